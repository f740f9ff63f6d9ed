/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Gramine manifest component: the one public header of src/manifest.
 *
 *   model.h     — the typed manifest model (manifest_load) every consumer reads
 *   check.h     — key schema, validation with Gramine's messages, defaults, legacy migration
 *   trusted.h   — sgx.trusted_files expansion and parallel hashing
 *   render.h    — the whole `moat manifest render` pipeline
 *   sigstruct.h — moat's measurement (docs/measurement.md) and Gramine's SIGSTRUCT
 */
#pragma once

#include "check.h"
#include "jinja.h"
#include "model.h"
#include "render.h"
#include "sigstruct.h"
#include "trusted.h"
