"""fastai_audio 0.1 frontend options beyond OrcaHello's, one concern per module, each a named step of
the stage chain (model/pipeline.py runs them; model/stages.py names them):

    silence.py   remove_silence "trim" / "split" / "all"   librosa.effects.split + fastai_audio's merge
    segments.py  segment_size, max_to_pad                  fixed-size segments; tfm_padtrim_signal
    features.py  mfcc, delta                               torchaudio MFCC; librosa.feature.delta x 2
    offsets.py   the random offsets legacy draws           (pad "zeros", crops, padtrim) and the
                                                           deterministic ones the runtime takes
    files.py     a whole file as fastai_audio's predict path reads it (soundfile, float32)

Written with numpy/scipy/torch only: the clean env never imports torchaudio or librosa; each step is
replayed against legacy's own output in tests/test_frontend_options_legacy.py.
"""
