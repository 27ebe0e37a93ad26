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
# One flow, one set of variables, the embedded fixture by default; every target takes the same ones:
#   MODEL=DIR       model folder: model.pkl (+ model.pkl.sha256 or SHA256=), then model.safetensors +
#                   config.json written beside it by `make convert` (a MODEL= naming model.pkl means its folder)
#   AUDIO=DIR|FILES recordings: a folder (scanned recursively) or files of one folder
#   REFERENCES=DIR  where `make references` records and `make parity` / `make publish` read
#   REPORTS=DIR     where `make parity` writes parity.{json,md,html} and `make publish` reads parity.json
MODEL ?= $(FIXTURE)
AUDIO ?= reference_outputs/corpus
REFERENCES ?= reference_outputs/stages
PREDICT_REFERENCES ?= build/predict_references
REPORTS ?= reports
SHA256 ?=
FRONTEND ?=
POSITIVE ?=
OUT ?=
BUDGET_MB ?= 2000
REPO_ID ?=
DRY_RUN ?=
# The tolerances parity applies: derived from the fixture's envelope by default; `make envelope` with
# your MODEL= / AUDIO= / REFERENCES= measures your model's own (VARIANTS= a comma list to measure fewer).
ENVELOPE ?= reference_outputs/envelope.json
TOLERANCES ?= parity/tolerances.json
# predict mode's own: `make predict-envelope` measures them; `make predict-parity TOLERANCES=$(PREDICT_TOLERANCES)`
PREDICT_ENVELOPE ?= $(REPORTS)/predict_envelope.json
PREDICT_TOLERANCES ?= $(REPORTS)/predict_tolerances.json
VARIANTS ?=
MODEL_DIR = $(if $(filter %.pkl,$(MODEL)),$(patsubst %/,%,$(dir $(MODEL))),$(MODEL))
# `make verify` records its own references and writes its own report, never over REFERENCES/REPORTS
VERIFY_REFERENCES ?= build/verify/references
VERIFY_REPORTS ?= $(patsubst %/,%,$(dir $(patsubst %/,%,$(VERIFY_REFERENCES))))/reports
# upstream's real-data mel reference for parity's real-data check (beside the checkout when present)
UPSTREAM ?= $(wildcard ../shared/data/upstream_sunset_bay_mel_reference.safetensors)

.PHONY: help envs env-clean env-legacy fixture convert corpus references predict-references predict-parity predict-envelope envelope tolerances controls controls-refs parity zoo zoo-parity variants verify test test-legacy bench bench-bodies bench-envelope bench-cuda publish env-evaluate evaluate calibrate

help:  ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/:.*## /\t/' | expand -t 14

envs: env-clean env-legacy  ## build both virtualenvs (no-op when up to date)
env-clean:  ## build the clean env (.venvs/clean)
	@envs/make_env.sh clean
env-legacy:  ## build the legacy env (.venvs/legacy); set FASTAI_AUDIO_SPEC to override the source
	@envs/make_env.sh legacy

fixture: env-legacy  ## [legacy] synthesize audio, train the ResNet18 fixture learner, export model.pkl
	$(LEGACY) -m convert.fixture --out $(FIXTURE)

convert: env-legacy  ## [legacy] MODEL/model.pkl -> model.safetensors + config.json beside it  (MODEL= SHA256= FRONTEND= POSITIVE=)
	$(LEGACY) -m convert.cli --model "$(MODEL_DIR)/model.pkl" --out "$(or $(OUT),$(MODEL_DIR))" \
	  $(if $(SHA256),--sha256 "$(SHA256)") $(if $(FRONTEND),--frontend "$(FRONTEND)") \
	  $(if $(POSITIVE),--positive-class "$(POSITIVE)")

corpus: env-clean  ## regenerate the committed parity audio corpus (seeded, deterministic)
	$(CLEAN) -m orcaport.parity.testaudio.corpus --out reference_outputs/corpus

references: env-legacy  ## [legacy] record stage-by-stage references from the real legacy pipeline  (MODEL= AUDIO= REFERENCES= BUDGET_MB=)
	$(LEGACY) -m convert.references --model "$(MODEL_DIR)" --audio $(AUDIO) --out "$(REFERENCES)" \
	  --budget-mb $(BUDGET_MB) $(if $(SHA256),--sha256 "$(SHA256)")

predict-references: env-legacy  ## [legacy] references of fastai_audio's own predict, every stage (per file / per item)  (MODEL= AUDIO= PREDICT_REFERENCES=)
	$(LEGACY) -m convert.predict_references --model "$(MODEL_DIR)" --audio $(AUDIO) --out "$(PREDICT_REFERENCES)" \
	  $(if $(SHA256),--sha256 "$(SHA256)")

predict-parity: env-clean  ## [clean] replay the predict-mode references stage by stage, isolated + chained  (MODEL= AUDIO= PREDICT_REFERENCES= REPORTS=)
	$(CLEAN) -m orcaport.parity.predict_parity --model "$(MODEL_DIR)" --references "$(PREDICT_REFERENCES)" \
	  --audio $(AUDIO) --out "$(REPORTS)/predict_parity.json" --tolerances "$(TOLERANCES)"

envelope: env-legacy env-clean  ## [legacy] legacy's own spread under every kernel path -> ENVELOPE, then TOLERANCES  (MODEL= AUDIO= REFERENCES= VARIANTS=)
	$(LEGACY) -m convert.envelope --model "$(MODEL_DIR)" --corpus $(AUDIO) --references "$(REFERENCES)" \
	  --out "$(ENVELOPE)" $(if $(VARIANTS),--variants "$(VARIANTS)") $(if $(SHA256),--sha256 "$(SHA256)")
	$(CLEAN) -m orcaport.parity.envelope derive --envelope "$(ENVELOPE)" --out "$(TOLERANCES)"

predict-envelope: env-legacy env-clean  ## [legacy] fastai_audio predict's own spread per stage -> PREDICT_ENVELOPE, then PREDICT_TOLERANCES  (MODEL= AUDIO= PREDICT_REFERENCES= VARIANTS=)
	$(LEGACY) -m convert.predict_envelope --model "$(MODEL_DIR)" --audio $(AUDIO) --references "$(PREDICT_REFERENCES)" \
	  --out "$(PREDICT_ENVELOPE)" $(if $(VARIANTS),--variants "$(VARIANTS)") $(if $(SHA256),--sha256 "$(SHA256)")
	$(CLEAN) -m orcaport.parity.envelope derive --envelope "$(PREDICT_ENVELOPE)" --out "$(PREDICT_TOLERANCES)"

tolerances: env-clean  ## derive TOLERANCES from ENVELOPE (policy: parity/tolerance_policy.json)
	$(CLEAN) -m orcaport.parity.envelope derive --envelope "$(ENVELOPE)" --out "$(TOLERANCES)"

controls-refs: env-legacy  ## [legacy] record the negative controls' odd-rate references
	$(CLEAN) -m orcaport.parity.testaudio.corpus --set controls --out reference_outputs/controls/corpus
	$(LEGACY) -m convert.references --model $(FIXTURE) --corpus reference_outputs/controls/corpus \
	  --out reference_outputs/controls/stages

controls: env-clean  ## [clean] negative controls: each broken quirk must fail at its stage (reports/controls.json)
	$(CLEAN) -m orcaport.parity.controls --outputs reference_outputs --reports reports --tolerances "$(TOLERANCES)"

parity: env-clean  ## [clean] replay every stage fastai-free and diff against the references  (MODEL= AUDIO= REFERENCES= REPORTS=)
	$(CLEAN) -m orcaport.parity --model "$(MODEL_DIR)" --references "$(REFERENCES)" --audio $(AUDIO) --reports "$(REPORTS)" \
	  --tolerances "$(TOLERANCES)" $(if $(UPSTREAM),--upstream "$(UPSTREAM)")

verify: env-legacy env-clean  ## [both] strongest proof: fresh references on this machine, replayed (same-machine criteria)  (MODEL= AUDIO= VERIFY_REFERENCES= VERIFY_REPORTS=)
	$(LEGACY) -m convert.references --model "$(MODEL_DIR)" --audio $(AUDIO) --out "$(VERIFY_REFERENCES)" \
	  --budget-mb $(BUDGET_MB) $(if $(SHA256),--sha256 "$(SHA256)")
	$(CLEAN) -m orcaport.parity --model "$(MODEL_DIR)" --references "$(VERIFY_REFERENCES)" --audio $(AUDIO) \
	  --reports "$(VERIFY_REPORTS)" --tolerances "$(TOLERANCES)" $(if $(UPSTREAM),--upstream "$(UPSTREAM)")
	@echo "verify: references in $(VERIFY_REFERENCES), report in $(VERIFY_REPORTS)/parity.{json,md,html} ($(REPORTS) untouched)"

zoo: env-legacy  ## [legacy] the learner zoo: one tiny learner per body family and per fastai_audio option, converted + referenced (reference_outputs/zoo)
	$(LEGACY) -m convert.zoo --out reference_outputs/zoo
zoo-parity: env-clean  ## [clean] make parity (windowed) and make predict-parity on every zoo learner, its weights rebuilt from the committed residual (REPORTS=)
	@set -e; for cfg in reference_outputs/zoo/*/config.json; do e=$$(dirname $$cfg); n=$$(basename $$e); \
	  a=reference_outputs/zoo/$$($(CLEAN) -c 'import json, sys; print(json.load(open(sys.argv[1])).get("audio", "audio"))' $$e/zoo.json); \
	  $(CLEAN) -m convert.zoo_weights --zoo $$e --out build/zoo/$$n >/dev/null; \
	  if [ -d $$e/stages ]; then $(CLEAN) -m orcaport.parity --model build/zoo/$$n --references $$e/stages --audio $$a \
	    --reports "$(REPORTS)/zoo/$$n" --tolerances "$(TOLERANCES)"; fi; \
	  if [ -d $$e/predict ]; then $(CLEAN) -m orcaport.parity.predict_parity --model build/zoo/$$n --references $$e/predict \
	    --audio $$a --out "$(REPORTS)/zoo/$$n/predict_parity.json" --tolerances "$(TOLERANCES)"; fi; done

variants: env-clean  ## [clean] make parity under every kernel-path variant of the envelope (reports/variants.json)
	$(CLEAN) -m orcaport.parity.variants --reports reports -- --model $(FIXTURE) \
	  --references reference_outputs/stages --audio reference_outputs/corpus

test: env-clean  ## run the test suite in the clean env (legacy tests run too when .venvs/legacy exists)
	$(CLEAN) -m pytest

bench: env-clean  ## speed/memory benchmarks (never in CI); writes bench/results.json, then the per-body rows
	@status=0; $(CLEAN) -m bench || status=$$?; \
	if [ -x "$(LEGACY)" ]; then $(CLEAN) -m bench.bodies || status=$$?; $(CLEAN) -m bench.envelope || status=$$?; \
	else echo "bench: per-body and envelope rows not run (no legacy env: make env-legacy)"; fi; exit $$status
bench-bodies: env-clean env-legacy  ## one row per body family: legacy vs clean clips/s, same run (never in CI); writes bench/bodies.{json,md}
	$(CLEAN) -m bench.bodies

bench-envelope: env-clean env-legacy  ## make envelope vs make references on the README-flow folder, same run (never in CI); writes bench/envelope.json
	$(CLEAN) -m bench.envelope

bench-cuda: env-clean  ## [GPU machine] the whole detector on CUDA over many hours; writes bench/cuda.json (make bench shows it)
	$(CLEAN) -m bench.cuda --out bench

# evaluate: precision/recall/F1 on the user's labels (issue 21). LABELS= a Raven table, Audacity
# label file, CSV (file,start,end[,label]) or a folder of them; DATASET= the labeled set's name
# (reports, model card); UNLABELED=negative counts recordings no label file mentions as negatives.
# The legacy column comes from REFERENCES= where they cover the recordings, else from the legacy
# env when it exists (NO_LEGACY=1: neither). Needs the evaluate extra (scikit-learn).
# `make publish EVALUATION=$(REPORTS)/evaluation.json` puts its results on the model card.
LABELS ?=
DATASET ?=
UNLABELED ?=
NO_LEGACY ?=
EVALUATION ?=

env-evaluate: env-clean  ## the evaluate extra (scikit-learn, envs/evaluate.lock.txt) in the clean env
	@$(CLEAN) -c "import sklearn" 2>/dev/null || $(CLEAN) -m pip install -q --disable-pip-version-check -r envs/evaluate.lock.txt

evaluate: env-evaluate  ## [clean, + legacy column] P/R/F1 of legacy and every profile on labeled recordings -> REPORTS/evaluation.*  (MODEL= AUDIO= LABELS= REFERENCES= REPORTS= DATASET= UNLABELED=)
	$(if $(LABELS),,$(error LABELS= is required: a Raven table, Audacity labels, a CSV or a folder of them))
	$(CLEAN) -m orcaport.parity.evaluation --model "$(MODEL_DIR)" --audio $(AUDIO) --labels "$(LABELS)" \
	  --reports "$(REPORTS)" $(if $(NO_LEGACY),,--references "$(REFERENCES)" $(if $(wildcard $(LEGACY)),--legacy-python $(LEGACY))) \
	  $(if $(SHA256),--sha256 "$(SHA256)") $(if $(DATASET),--dataset "$(DATASET)") $(if $(UNLABELED),--unlabeled $(UNLABELED))

# calibrate: int8's calibration, made once on your recordings (AUDIO=) and stored in the model folder
# (int8_calibration.{safetensors,json}); then `orcaport detect --profile fast --arithmetic int8`, and
# `make evaluate` judges exactly that. CLIPS= the most clips used, evenly spaced (default 64).
CLIPS ?=

calibrate: env-clean  ## [clean] int8: calibrate MODEL's quantized body on AUDIO= -> MODEL/int8_calibration.*  (MODEL= AUDIO= CLIPS=)
	$(CLEAN) -m orcaport.model calibrate --model "$(MODEL_DIR)" --audio $(AUDIO) $(if $(CLIPS),--clips $(CLIPS))

# publish's variables are the flow's (MODEL= the converted folder, REFERENCES=, REPORTS=); a MODEL=
# naming model.pkl (convert's input) means the folder it sits in. CARD= is the card config JSON.
CARD ?=
PUBLISH_MODEL = $(MODEL_DIR)

# MODE=predict: a learner only fastai_audio's predict runs, gated on `make predict-parity`'s report
PUBLISH_REPORT = $(if $(filter predict,$(MODE)),$(REPORTS)/predict_parity.json,$(REPORTS)/parity.json)
PUBLISH_REFERENCES = $(if $(filter predict,$(MODE)),$(PREDICT_REFERENCES),$(REFERENCES))
publish: env-clean  ## stage (DRY_RUN=1) or upload to the Hub, gated on $(REPORTS)/parity.json (MODE=predict: predict_parity.json)  (REPO_ID= MODEL= REFERENCES= REPORTS= CARD= EVALUATION=)
	$(CLEAN) -m orcaport.parity.publishing --model "$(PUBLISH_MODEL)" --report "$(PUBLISH_REPORT)" \
	  --references "$(PUBLISH_REFERENCES)" --tolerances "$(TOLERANCES)" --repo-id "$(REPO_ID)" $(if $(DRY_RUN),--dry-run) \
	  $(if $(CARD),--card "$(CARD)") $(if $(EVALUATION),--evaluation "$(EVALUATION)")
