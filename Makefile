# orcaport: convert a fastai v1 + fastai_audio learner, prove parity stage by stage, publish.
# Legacy-env targets: fixture, convert, references.  Clean-env targets: parity, test, bench, publish.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

-include envs/local.mk
export FASTAI_AUDIO_SPEC

CLEAN := .venvs/clean/bin/python
LEGACY := .venvs/legacy/bin/python
FIXTURE := reference_outputs/fixture
MODEL ?= $(FIXTURE)/model.pkl
OUT ?= $(dir $(MODEL))
SHA256 ?=
FRONTEND ?=
REPO_ID ?=
DRY_RUN ?=

.PHONY: help envs env-clean env-legacy fixture convert corpus references envelope tolerances controls controls-refs parity parity-variants test test-legacy bench publish

help:  ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/:.*## /\t/' | expand -t 14

envs: env-clean env-legacy  ## build both virtualenvs (no-op when up to date)
env-clean:  ## build the clean env (.venvs/clean)
	@envs/make_env.sh clean
env-legacy:  ## build the legacy env (.venvs/legacy); set FASTAI_AUDIO_SPEC to override the source
	@envs/make_env.sh legacy

fixture: env-legacy  ## [legacy] synthesize audio, train the ResNet18 fixture learner, export model.pkl
	$(LEGACY) -m convert.fixture --out $(FIXTURE)

convert: env-legacy  ## [legacy] model.pkl -> model.safetensors + config.json  (MODEL=, SHA256=, OUT=, FRONTEND=)
	$(LEGACY) -m convert.cli --model "$(MODEL)" --out "$(OUT)" \
	  $(if $(SHA256),--sha256 "$(SHA256)") $(if $(FRONTEND),--frontend "$(FRONTEND)")

corpus: env-clean  ## regenerate the committed parity audio corpus (seeded, deterministic)
	$(CLEAN) -m parity.corpus --out reference_outputs/corpus

references: env-legacy  ## [legacy] record stage-by-stage references from the real legacy pipeline
	$(LEGACY) -m convert.references --model $(FIXTURE) --corpus reference_outputs/corpus --out reference_outputs/stages

envelope: env-legacy  ## [legacy] legacy's own spread under every kernel path -> reference_outputs/envelope.json, then tolerances
	$(LEGACY) -m convert.envelope --model $(FIXTURE) --corpus reference_outputs/corpus \
	  --references reference_outputs/stages --out reference_outputs/envelope.json
	$(MAKE) tolerances

tolerances: env-clean  ## derive parity/tolerances.json from the envelope (policy: parity/tolerance_policy.json)
	$(CLEAN) -m parity.envelope derive

controls-refs: env-legacy  ## [legacy] record the negative controls' odd-rate references
	$(CLEAN) -m parity.corpus --set controls --out reference_outputs/controls/corpus
	$(LEGACY) -m convert.references --model $(FIXTURE) --corpus reference_outputs/controls/corpus \
	  --out reference_outputs/controls/stages

controls: env-clean  ## [clean] negative controls: each broken quirk must fail at its stage (reports/controls.json)
	$(CLEAN) -m parity.controls --reports reports

parity: env-clean  ## [clean] replay every stage fastai-free and diff against the references
	$(CLEAN) -m parity --model $(FIXTURE) --references reference_outputs/stages --reports reports

parity-variants: env-clean  ## [clean] make parity under every kernel-path variant of the envelope (reports/variants.json)
	$(CLEAN) -m parity.variants --reports reports

test: env-clean  ## run the test suite in the clean env (legacy tests run too when .venvs/legacy exists)
	$(CLEAN) -m pytest

bench: env-clean  ## speed/memory benchmarks (never in CI); writes bench/results.json
	$(CLEAN) -m bench

publish: env-clean  ## stage (DRY_RUN=1) or upload to the Hub, gated on reports/parity.json  (REPO_ID=)
	$(CLEAN) -m parity.publish --model $(FIXTURE) --report reports/parity.json \
	  --repo-id "$(REPO_ID)" $(if $(DRY_RUN),--dry-run)
