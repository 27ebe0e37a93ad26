import sys

from orcaport.parity.publishing.publish import main

sys.exit(main())
