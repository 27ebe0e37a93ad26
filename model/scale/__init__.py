"""Detection past one machine: `orcaport detect ... --ray [ADDRESS]` (the `orcaport[ray]` extra).

    options.py     the --ray flags and their checks (no Ray import: the core CLI loads it)
    sources.py     inputs through fsspec -> work items (files, manifests, globs, HLS archive windows)
    run_folder.py  the run folder: run manifest (resume, exactly once) and outputs as files finish
    progress.py    the whole run's progress (files, clips, clips/s, ETA) and where time went
    ray_detect.py  Ray core tasks (waveform steps, CPU) and actors (spectrogram + network)

Only ray_detect.py imports Ray; nothing in the core runtime imports this package's Ray module.
"""
