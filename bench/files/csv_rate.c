/*
 * bench/files: how fast file.process analyses a CSV, next to its ceiling: read() of the same
 * file through a 64 KiB buffer, from the page cache in both cases (the file is read once
 * before timing), so the ratio is the parser's cost and not the disk's.
 *
 * Without -f, a CSV of about MB megabytes is generated in a temporary directory (and removed):
 * 8 columns of mixed types (integer, number, boolean, quoted strings with embedded commas,
 * "" escapes and newlines, timestamps, empty cells, exponents). Each measure runs `runs`
 * times, interleaved; medians are reported on stderr, then one JSON line on stdout.
 *
 * usage: csv_rate [-f FILE] [MB=100] [runs=3]
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobs/jobs.h"

#define MAX_RUNS 9
#define READ_BUF (64 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic, so that every run of the benchmark parses the same bytes. */
static uint32_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 33);
}

static const char *const NAMES[] = {"Smith",   "\"Lovelace, Ada\"",     "Turing", "\"Hopper, Grace\"",
                                    "Noether", "\"O'Neil \"\"Bud\"\"\""};
static const char *const NOTES[] = {"ok",      "\"needs review, urgent\"", "", "\"two\nlines\"",
                                    "shipped", "\"said \"\"fine\"\"\""};

static int write_row(char *out, size_t size, long id, uint64_t *rng)
{
    uint32_t r = next_random(rng);
    char qty[16] = "";
    if (r % 20 != 0)
        snprintf(qty, sizeof(qty), "%u", r % 1000);
    return snprintf(out, size, "%ld,%u.%02u,%s,%s,2024-%02u-%02uT%02u:%02u:00Z,%s,%u.%ue-%u,%s\n", id,
                    r % 100000, r % 100, r & 1 ? "true" : "false", NAMES[r % 6], 1 + r % 12, 1 + r % 28,
                    r % 24, r % 60, qty, r % 10, r % 1000, r % 9, NOTES[(r >> 8) % 6]);
}

/* Writes about mb megabytes of CSV to path; returns the number of data rows, or -1. */
static long generate(const char *path, long mb)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    static char buf[1 << 20];
    uint64_t rng = 42;
    size_t len = (size_t)snprintf(buf, sizeof(buf), "id,price,active,name,created,qty,score,note\n");
    long rows = 0;
    for (long total = 0; total < mb * 1000000L; rows++) {
        if (len > sizeof(buf) - 512) {
            total += (long)fwrite(buf, 1, len, f);
            len = 0;
        }
        len += (size_t)write_row(buf + len, sizeof(buf) - len, rows, &rng);
    }
    fwrite(buf, 1, len, f);
    return fclose(f) == 0 ? rows : -1;
}

/* One pass of read() through a 64 KiB buffer; returns the bytes read. */
static long long read_all(const char *path)
{
    static char buf[READ_BUF];
    int fd = open(path, O_RDONLY);
    long long total = 0;
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
        total += n;
    if (fd >= 0)
        close(fd);
    return total;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), compare_double);
    return s[n / 2];
}

/* Times one analysis; the rows it found go to *rows (-1 when it failed). */
static double time_analysis(const char *path, long long *rows, char **text_out)
{
    char err[256];
    double t0 = now_s();
    char *text = jobs_file_analyze(path, "bench.csv", "text/csv", err, sizeof(err));
    double elapsed = now_s() - t0;
    json_t *doc = text != NULL ? json_loads(text, 0, NULL) : NULL;
    *rows =
        json_is_integer(json_object_get(doc, "rows")) ? json_integer_value(json_object_get(doc, "rows")) : -1;
    json_decref(doc);
    if (text == NULL)
        fprintf(stderr, "csv_rate: %s\n", err);
    free(*text_out);
    *text_out = text;
    return elapsed;
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    int arg = 1;
    if (argc > 2 && strcmp(argv[1], "-f") == 0) {
        given = argv[2];
        arg = 3;
    }
    long mb = argc > arg ? atol(argv[arg]) : 100;
    int runs = argc > arg + 1 ? atoi(argv[arg + 1]) : 3;
    if (mb < 1 || mb > 100000 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: csv_rate [-f FILE] [MB=100] [runs=3]\n");
        return 2;
    }
    char dir[] = "/tmp/hydrant-csv-rate-XXXXXX", path[64];
    long generated = -1;
    if (given == NULL) {
        if (mkdtemp(dir) == NULL)
            return 1;
        snprintf(path, sizeof(path), "%s/bench.csv", dir);
        generated = generate(path, mb);
        if (generated < 0)
            return 1;
    }
    const char *file = given != NULL ? given : path;
    long long bytes = read_all(file); /* also brings it into the page cache */
    double t_read[MAX_RUNS], t_csv[MAX_RUNS];
    long long rows = -1;
    char *text = NULL;
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        read_all(file);
        t_read[r] = now_s() - t0;
        t_csv[r] = time_analysis(file, &rows, &text);
        fprintf(stderr, "run %d: read %.0f MB/s, analysis %.0f MB/s\n", r + 1, bytes / t_read[r] / 1e6,
                bytes / t_csv[r] / 1e6);
    }
    if (given == NULL) {
        unlink(path);
        rmdir(dir);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double csv_rate = bytes / median(t_csv, runs) / 1e6, read_rate = bytes / median(t_read, runs) / 1e6;
    fprintf(stderr,
            "\n%.1f MB, %lld rows analysed (%s)\nanalysis: median %.0f MB/s; read(): median %.0f MB/s; "
            "ratio %.2f; peak RSS %ld KiB\n%s\n",
            bytes / 1e6, rows, generated < 0 || rows == generated ? "as generated" : "NOT as generated",
            csv_rate, read_rate, csv_rate / read_rate, ru.ru_maxrss, text != NULL ? text : "(no analysis)");
    printf(
        "{\"bench\":\"csv_rate\",\"csv_mb_per_s\":%.1f,\"read_mb_per_s\":%.1f,\"ratio\":%.3f,\"bytes\":%lld,"
        "\"rows\":%lld,\"runs\":%d,\"peak_rss_kib\":%ld}\n",
        csv_rate, read_rate, csv_rate / read_rate, bytes, rows, runs, ru.ru_maxrss);
    free(text);
    return text != NULL && (generated < 0 || rows == generated) ? 0 : 1;
}
