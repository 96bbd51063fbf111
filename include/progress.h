/* progress.h — progress of a sweep on stderr (rank 0 only).
 *
 * On a terminal: one live line, redrawn at most 4 times a second. Otherwise
 * (a Slurm log, a pipe): a plain line every `interval` seconds. Each shows
 * cells done/total, cells/s over the recent past, ETA and units in flight.
 */
#ifndef PATCHGRID_PROGRESS_H
#define PATCHGRID_PROGRESS_H

#include <stddef.h>

typedef struct Progress Progress;

/* total cells of the sweep, of which `already` were done before (resume). */
Progress *progress_new(size_t total, size_t already, double interval);
/* done: cells finished so far (including `already`); in_flight: units being
 * computed. Cheap to call often. */
void progress_update(Progress *p, size_t done, size_t in_flight);
/* Prints the final line (with a newline) and frees p (accepts NULL). */
void progress_end(Progress *p, size_t done);

#endif
