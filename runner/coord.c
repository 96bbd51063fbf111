/* coord.c — the coordinator and the worker loop (see include/coord.h).
 *
 * Messages (all int64 arrays on MPI_COMM_WORLD):
 *   worker -> 0, TAG_REQ:  {cells finished since the last request, flags}
 *   0 -> worker, TAG_WORK: {kind, first unit, end unit}
 * with kind WORK (compute units [first, end) that are not done yet), SYNC
 * (enter store_sync now) or STOP (enter the final store_sync and return).
 */
#include "coord.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "progress.h"

enum { TAG_REQ = 1, TAG_WORK = 2 };
enum { MSG_WORK = 1, MSG_SYNC = 2, MSG_STOP = 3 };
enum { REQ_SIGNALLED = 1, REQ_FAILED = 2 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

/* ---- worker --------------------------------------------------------------- */

static int unit_done(const Store *s, size_t u) { return s != NULL && store_unit_done(s, u); }

/* store_sync, or nothing in null-work mode (no store). */
static int sync_store(Store *s, const size_t *units, size_t n, Err *err)
{
    return s == NULL ? 0 : store_sync(s, units, n, err);
}

static int worker_loop(const Plan *plan, Store *store, Worker *w, Err *err)
{
    size_t *pending = xcalloc(plan->n_units ? plan->n_units : 1, sizeof *pending);
    size_t n_pending = 0;
    int64_t cells = 0, failed = 0;
    int rc = 0;
    for (;;) {
        int64_t req[2] = {cells, (run_stop_requested() ? REQ_SIGNALLED : 0) |
                                     (failed ? REQ_FAILED : 0)};
        MPI_Send(req, 2, MPI_INT64_T, 0, TAG_REQ, MPI_COMM_WORLD);
        cells = 0;
        int64_t msg[3];
        MPI_Recv(msg, 3, MPI_INT64_T, 0, TAG_WORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (msg[0] == MSG_STOP) break;
        if (msg[0] == MSG_SYNC) {
            Err serr;
            if (sync_store(store, pending, n_pending, &serr) && !failed) {
                *err = serr;
                failed = 1;
                rc = -1;
            }
            n_pending = 0;
            continue;
        }
        for (size_t u = (size_t)msg[1]; u < (size_t)msg[2]; u++) {
            if (failed || run_stop_requested()) break; /* the rest waits for the next run */
            if (unit_done(store, u)) continue;
            size_t block = plan_unit(plan, u).n_vals;
            if (w != NULL) {
                if (worker_run_unit(w, store, u, err)) {
                    failed = 1;
                    rc = -1;
                    break;
                }
                pending[n_pending++] = u;
            }
            cells += (int64_t)block;
        }
    }
    Err serr;
    if (sync_store(store, pending, n_pending, &serr) && rc == 0) {
        *err = serr;
        rc = -1;
    }
    free(pending);
    return rc;
}

/* ---- coordinator ---------------------------------------------------------- */

typedef struct Coord {
    const Plan *plan;
    const Store *store;
    size_t next, end;    /* units [next, end) are not handed out yet */
    size_t remaining;    /* units not done and not handed out */
    int n_workers;
    int stopping;        /* no more work: a signal, an error, or all handed out */
    int failed;
} Coord;

/* The next range of units for a worker: about remaining / (2 workers) units
 * that are not done (at least one), as consecutive ids, and at most one block
 * of pairs' worth (units_per_block), so that a worker comes back often enough
 * for syncs and stops to reach it. */
static int next_range(Coord *c, int64_t *first, int64_t *end, size_t max_chunk)
{
    while (c->next < c->end && unit_done(c->store, c->next)) c->next++;
    if (c->next >= c->end) return 0;
    size_t want = c->remaining / (2 * (size_t)c->n_workers);
    if (want < 1) want = 1;
    if (want > max_chunk) want = max_chunk;
    *first = (int64_t)c->next;
    size_t got = 0;
    while (c->next < c->end && got < want) {
        if (!unit_done(c->store, c->next)) got++;
        c->next++;
    }
    *end = (int64_t)c->next;
    c->remaining -= got;
    return 1;
}

static int coordinator(const Plan *plan, Store *store, int null_work, size_t first, size_t end,
                       double sync_interval, Err *err)
{
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    Coord c = {.plan = plan, .store = store, .next = first, .end = end, .n_workers = size - 1};
    size_t total = 0, done = 0;
    for (size_t u = first; u < end; u++) {
        size_t b = plan_unit(plan, u).n_vals;
        total += b;
        if (unit_done(store, u))
            done += b;
        else
            c.remaining++;
    }
    /* Null work measures the cost of one dispatch: one unit per message. */
    size_t max_chunk = null_work ? 1 : plan->units_per_block;
    Progress *pr = progress_new(total, done, 10.0);
    int *busy = xcalloc((size_t)size, sizeof *busy);
    int stopped = 0, in_flight = 0, sync_waiting = 0;
    double last_sync = now(), t0 = now(), last_msg = now();
    uint64_t messages = 0, units_sent = 0;
    long nap = 20; /* microseconds; grows while idle, resets on a message */
    int64_t req[2];
    MPI_Request rq;
    MPI_Status st;
    MPI_Irecv(req, 2, MPI_INT64_T, MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &rq);
    while (stopped < c.n_workers) {
        int flag = 0;
        MPI_Test(&rq, &flag, &st);
        if (!flag) {
            if (run_stop_requested()) c.stopping = 1;
            progress_update(pr, done, (size_t)in_flight);
            /* Spin briefly after traffic, then sleep longer and longer (up
             * to 1 ms) so an idle coordinator leaves its core to a worker. */
            if (now() - last_msg > 200e-6) {
                sleep_us(nap);
                if (nap < 1000) nap *= 2;
            }
            continue;
        }
        last_msg = now();
        nap = 20;
        messages++;
        int wk = st.MPI_SOURCE;
        done += (size_t)req[0];
        if (busy[wk]) busy[wk] = 0, in_flight--;
        if (req[1] & REQ_SIGNALLED) c.stopping = 1;
        if (req[1] & REQ_FAILED) c.stopping = 1, c.failed = 1;
        MPI_Irecv(req, 2, MPI_INT64_T, MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &rq);

        int64_t msg[3] = {MSG_STOP, 0, 0};
        int sync_due = !null_work && !stopped && !c.stopping && sync_interval >= 0 &&
                       now() - last_sync >= sync_interval;
        if (sync_waiting > 0 || sync_due) {
            msg[0] = MSG_SYNC;
            sync_waiting++;
        } else if (!c.stopping && next_range(&c, &msg[1], &msg[2], max_chunk)) {
            msg[0] = MSG_WORK;
            busy[wk] = 1;
            in_flight++;
            units_sent += (uint64_t)(msg[2] - msg[1]);
        } else {
            stopped++;
        }
        MPI_Send(msg, 3, MPI_INT64_T, wk, TAG_WORK, MPI_COMM_WORLD);
        if (sync_waiting == c.n_workers) {
            /* Every worker is in store_sync: join them. */
            Err serr;
            if (sync_store(store, NULL, 0, &serr)) {
                /* every rank got the same error: stop handing out work */
                *err = serr;
                c.stopping = 1;
            }
            sync_waiting = 0;
            last_sync = now();
        }
    }
    MPI_Cancel(&rq);
    MPI_Wait(&rq, MPI_STATUS_IGNORE);
    double el = now() - t0;
    progress_end(pr, done);
    if (null_work)
        fprintf(stderr, "patchgrid: null work: %llu units in %llu messages to %d workers in "
                "%.3f s: %.0f units/s, %.0f requests/s\n", (unsigned long long)units_sent,
                (unsigned long long)messages, c.n_workers, el, (double)units_sent / el,
                (double)messages / el);
    free(busy);
    /* The final sync: every worker entered it when told to stop. */
    Err serr;
    int rc = 0;
    if (sync_store(store, NULL, 0, &serr)) {
        *err = serr;
        rc = -1;
    }
    /* A worker that failed returns its own error; cmd_run has rank 0 print it. */
    return rc;
}

int coord_run(const Plan *plan, Store *store, Worker *w, size_t first, size_t end,
              double sync_interval, Err *err)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return err_set(err, "null-work mode needs at least 2 ranks");
    if (rank == 0) return coordinator(plan, store, w == NULL, first, end, sync_interval, err);
    return worker_loop(plan, store, w, err);
}
