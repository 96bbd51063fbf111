/* progress.c — progress lines on stderr (see include/progress.h). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

struct Progress {
    size_t total, already;
    double interval, t0, last_print;
    /* rate over a sliding window: the sample taken about 30 s ago */
    double win_t;
    size_t win_done;
    int tty;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Progress *progress_new(size_t total, size_t already, double interval)
{
    Progress *p = xcalloc(1, sizeof *p);
    p->total = total;
    p->already = already;
    p->interval = interval;
    p->t0 = p->win_t = now();
    p->win_done = already;
    p->last_print = p->t0;
    p->tty = isatty(STDERR_FILENO);
    return p;
}

static void fmt_secs(char *buf, size_t n, double s)
{
    if (s < 0 || s != s) {
        snprintf(buf, n, "?");
    } else if (s < 100) {
        snprintf(buf, n, "%.0fs", s);
    } else if (s < 6000) {
        snprintf(buf, n, "%.0fm%02.0fs", (double)(long)(s / 60), s - 60 * (double)(long)(s / 60));
    } else {
        snprintf(buf, n, "%.0fh%02.0fm", (double)(long)(s / 3600),
                 (s - 3600 * (double)(long)(s / 3600)) / 60);
    }
}

static void print(Progress *p, size_t done, size_t in_flight, int final)
{
    double t = now(), el = t - p->t0;
    double rate_all = el > 0 ? (double)(done - p->already) / el : 0;
    double wt = t - p->win_t;
    double rate = wt > 1 ? (double)(done - p->win_done) / wt : rate_all;
    if (wt > 30) p->win_t = t, p->win_done = done;
    char eta[32], elapsed[32];
    fmt_secs(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    fmt_secs(elapsed, sizeof elapsed, el);
    double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
    if (final)
        fprintf(stderr, "%s%zu/%zu cells (%.1f%%) in %s, %.0f cells/s\n", p->tty ? "\r\033[K" : "",
                done, p->total, pct, elapsed, rate_all);
    else
        fprintf(stderr, "%s%zu/%zu cells (%.1f%%), %.0f cells/s, ETA %s, %zu unit%s in flight%s",
                p->tty ? "\r\033[K" : "", done, p->total, pct, rate, eta, in_flight,
                in_flight == 1 ? "" : "s", p->tty ? "" : "\n");
    fflush(stderr);
    p->last_print = t;
}

void progress_update(Progress *p, size_t done, size_t in_flight)
{
    double t = now();
    if (t - p->last_print < (p->tty ? 0.25 : p->interval)) return;
    print(p, done, in_flight, 0);
}

void progress_end(Progress *p, size_t done)
{
    if (p == NULL) return;
    print(p, done, 0, 1);
    free(p);
}
