"""First import of the envelope's forkserver (convert/preloaded.py PRELOAD): its HOME becomes the
scratch folder named by PRELOAD_HOME, before any import can read the user's. The variable travels
in the environment the forkserver inherits, so the parent's own HOME is never changed (job
environments copied from it meanwhile keep the user's)."""

import os

PRELOAD_HOME = "ORCAPORT_PRELOAD_HOME"

if os.environ.get(PRELOAD_HOME):
    os.environ["HOME"] = os.environ.pop(PRELOAD_HOME)
