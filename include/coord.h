/* coord.h — dynamic self-scheduling of work units over MPI.
 *
 * Rank 0 coordinates: workers (ranks 1..N-1) ask for work, rank 0 answers
 * with a range of unit ids (guided self-scheduling: large ranges while much
 * is left, single units at the end, consecutive ids so that a worker's units
 * share pairs and their baseline runs), a sync order, or stop. Rank 0 waits
 * with a non-blocking receive and a short, adaptive sleep so it does not spin
 * a core. Every `sync_interval` seconds all ranks meet in store_sync(), which
 * flushes the file and only then marks the units finished before it as done.
 *
 * A signal (SIGTERM, SIGUSR1, SIGINT) on any rank makes rank 0 stop handing
 * out work; workers finish their current unit, and all ranks sync and return.
 * An error on a worker stops the sweep the same way and is returned by it.
 */
#ifndef PATCHGRID_COORD_H
#define PATCHGRID_COORD_H

#include "err.h"
#include "plan.h"
#include "store.h"
#include "worker.h"

/* Computes the units [first, end) that are not done yet (a part of the sweep,
 * or all of it). Collective over MPI_COMM_WORLD. Null-work mode (w and store NULL): units
 * are handed out one per message and acknowledged but neither computed nor
 * written, and rank 0 prints the dispatch rate. Returns 0, or -1 with err set
 * on the rank that failed. */
int coord_run(const Plan *plan, Store *store, Worker *w, size_t first, size_t end,
              double sync_interval, Err *err);

/* Set by the signal handler of cmd_run: 1 once a stop was requested. */
int run_stop_requested(void);

#endif
