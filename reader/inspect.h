/*
 * reader/inspect.h - the one internal interface of libflagshm that tools may
 * use beside the public API (tools/flagshm: status, list, show, dump): the
 * validated snapshot a view pins, read through snap.h's bounds-checked
 * accessors. Not part of the installed library; the flagshm tool links the
 * library's static parts. scripts/check-layers.py allows tools/ this header
 * and no other of reader/.
 */
#ifndef FLAGSHM_READER_INSPECT_H
#define FLAGSHM_READER_INSPECT_H

#include "flagshm.h"
#include "snap.h"

/* The snapshot V pins, or NULL when V pins none (nothing valid published,
 * or V is not an acquired view). Valid until V's release. */
const snap *flagshm_view_inspect(const flagshm_view *v);

/* Verify the whole snapshot V pins (snap_verify: checksum, every index
 * slot, every flag's prerequisites, every regex), as libflagshm does only
 * piecewise on first use. 0, FLAGSHM_EUNAVAIL (V pins none), or
 * FLAGSHM_ECORRUPT / FLAGSHM_ENOMEM with a message in ERR. */
int flagshm_view_verify(const flagshm_view *v, char *err, size_t errlen);

#endif
