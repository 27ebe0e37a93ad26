"""Publishing to the Hugging Face Hub, gated on parity: gate.py (nothing leaves unless a passing,
current parity.json vouches for it), publish.py (`make publish`: stage, verify, upload as one
commit), model_card.py (the README.md), card_config.py (what the user says about the model).
`python -m orcaport.parity.publishing` is publish.py's command line."""
