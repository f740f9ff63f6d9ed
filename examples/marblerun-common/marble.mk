# Shared by the MarbleRun samples (examples/marblerun-*/Makefile): how a Gramine app becomes a
# Marble under moat (../shared/reference/marblerun.md §5). A sample's Makefile sets
#   STEM      the Gramine stem (STEM.manifest.template → STEM.manifest → STEM.manifest.sgx)
#   TEMPLATE  the Gramine template (default STEM.manifest.template; upstream's runs unchanged)
#   MANIFEST  the MarbleRun manifest (default manifest.json)
#   RENDER    -D flags for `moat manifest render`;  APP  files the manifest hashes
#   PARAMS    the values of its own variables that the build depends on
# and includes this file. Variables a user may set: MOAT, PREMAIN, STATE.
COMMON := $(dir $(lastword $(MAKEFILE_LIST)))
MOAT ?= moat
MOAT_BIN := $(shell command -v $(MOAT))
# moat-premain is built next to moat (build/src/premain/ in a build tree)
PREMAIN ?= $(firstword $(wildcard $(dir $(MOAT_BIN))../premain/moat-premain \
                                  $(dir $(MOAT_BIN))moat-premain))
TEMPLATE ?= $(STEM).manifest.template
MANIFEST ?= manifest.json
# the Coordinator's state: its simulated platform, sealed state, log, pid and ports
STATE ?= $(CURDIR)/coordinator
COORD = MOAT=$(MOAT_BIN) $(COMMON)coordinator.sh
# what a Marble needs from the host (marblerun.md §4.2); MOAT_SIM_DIR: `moat run` quotes with
# the same SIMULATED platform the Coordinator verifies against
MARBLE_ENV = MOAT_SIM_DIR=$(STATE)/sim \
	EDG_MARBLE_COORDINATOR_ADDR=127.0.0.1:$$(cat $(STATE)/mesh_port) \
	EDG_MARBLE_UUID_FILE=uuid EDG_MARBLE_DNS_NAMES=localhost

all: $(STEM).manifest.sgx manifest.measured.json

# MarbleRun's premain is called premain-libos; the templates name it so
premain-libos: $(PREMAIN)
	@test -n "$(PREMAIN)" || { echo "error: moat-premain not found next to moat ($(MOAT_BIN));" \
	  "build it (make build) or set PREMAIN=path/to/moat-premain" >&2; exit 1; }
	cp $(PREMAIN) $@

# .params changes only when the choices of the build do (TEMPLATE=, MANIFEST=, the sample's
# PARAMS such as its ports), so that `make TEMPLATE=...` after a build renders again
.params: FORCE
	@echo '$(TEMPLATE) $(MANIFEST) $(PARAMS)' | cmp -s - $@ || \
	  echo '$(TEMPLATE) $(MANIFEST) $(PARAMS)' > $@
FORCE:

$(STEM).manifest: $(TEMPLATE) premain-libos $(APP) .params
	$(MOAT_BIN) manifest render --no-progress $(RENDER) $(TEMPLATE) $@

enclave-key.pem:
	$(MOAT_BIN) sign --gen-key -q $@

# prints the measurement (MRENCLAVE) as gramine-sgx-sign does; STEM.sig is the SIGSTRUCT
$(STEM).manifest.sgx: $(STEM).manifest enclave-key.pem
	$(MOAT_BIN) sign --manifest $< --output $@ --key enclave-key.pem

# the MarbleRun manifest with this build's identity in its Packages
manifest.measured.json: $(MANIFEST) $(STEM).manifest.sgx .params
	MOAT=$(MOAT_BIN) $(COMMON)measured-manifest.sh $(STEM).sig $(MANIFEST) > $@
	@echo "$@: Packages = $$(jq -c .Packages $@)"

# the steps, one by one (`make check` runs them all)
coordinator-start:
	$(COORD) start $(STATE)
set-manifest: manifest.measured.json
	$(COORD) set-manifest $(STATE) $<
coordinator-stop:
	$(COORD) stop $(STATE)

marblerun-clean:
	rm -rf premain-libos $(STEM).manifest $(STEM).manifest.sgx $(STEM).sig enclave-key.pem \
	  manifest.measured.json uuid .params $(STATE) OUTPUT LOG.*

.PHONY: all coordinator-start set-manifest coordinator-stop marblerun-clean FORCE
