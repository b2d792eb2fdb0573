/*
 * The log writer (src/http/log_writer.c) against a pipe that nobody reads: appending never
 * blocks, a full ring drops whole lines and counts them, and once the reader reads, every
 * line that was kept arrives, in order, followed by new ones; stopping writes what is left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"

#define LINE_LEN 64
#define RING     4096 /* 64 lines */

/* "line 000042 xxxx...\n", LINE_LEN bytes. */
static void make_line(char *buf, int n)
{
    memset(buf, 'x', LINE_LEN);
    char head[24];
    snprintf(head, sizeof(head), "line %06d ", n);
    memcpy(buf, head, strlen(head));
    buf[LINE_LEN - 1] = '\n';
}

/* A pipe of one page, filled to the last byte: the next write blocks. */
static void full_pipe(int fds[2])
{
    assert_int_equal(pipe(fds), 0);
    assert_true(fcntl(fds[1], F_SETPIPE_SZ, 4096) >= 4096);
    int flags = fcntl(fds[1], F_GETFL);
    fcntl(fds[1], F_SETFL, flags | O_NONBLOCK);
    while (write(fds[1], "f", 1) == 1)
        ;
    assert_int_equal(errno, EAGAIN);
    fcntl(fds[1], F_SETFL, flags); /* the writer gets a blocking fd, as stdout would be */
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
}

/* Reads from the pipe until `want` bytes came (bounded wait); returns how many did. */
static size_t read_exactly(int fd, char *buf, size_t want)
{
    size_t got = 0;
    for (int idle = 0; got < want && idle < 100;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            idle++;
            continue;
        }
        ssize_t n = read(fd, buf + got, want - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void assert_lines(const char *buf, int from, int count)
{
    char want[LINE_LEN];
    for (int i = 0; i < count; i++) {
        make_line(want, from + i);
        assert_memory_equal(buf + (size_t)i * LINE_LEN, want, LINE_LEN);
    }
}

static void test_full_ring_drops_and_counts_then_drains(void **state)
{
    (void)state;
    int fds[2];
    full_pipe(fds);
    http_log_writer_t *w = http_log_writer_start(fds[1], -1, 1, RING, RING);
    assert_non_null(w);
    assert_null(http_log_writer_ring(w, 0, HTTP_LOG_ERROR)); /* no fd: no ring */
    http_log_ring_t *ring = http_log_writer_ring(w, 0, HTTP_LOG_ACCESS);
    assert_non_null(ring);
    /* The writer is blocked on the full pipe: the ring keeps exactly what fits. */
    char line[LINE_LEN];
    int kept = 0, dropped = 0;
    for (int i = 0; i < 100; i++) {
        make_line(line, i);
        if (http_log_ring_append(ring, line, LINE_LEN) == 0)
            kept++;
        else
            dropped++;
    }
    assert_int_equal(kept, RING / LINE_LEN);
    assert_int_equal(dropped, 100 - RING / LINE_LEN);
    assert_int_equal(http_log_writer_dropped(w, HTTP_LOG_ACCESS), (uint64_t)dropped);
    assert_int_equal(http_log_writer_dropped(w, HTTP_LOG_ERROR), 0);
    /* The reader reads: the filler, then the kept lines, whole and in order. */
    static char buf[4096 + RING];
    assert_int_equal(read_exactly(fds[0], buf, 4096 + (size_t)kept * LINE_LEN),
                     4096 + (size_t)kept * LINE_LEN);
    assert_lines(buf + 4096, 0, kept);
    /* New lines arrive by themselves (the writer's rounds), and the last ones at the stop.
     * The writer frees the ring's bytes just after its write returns, a moment after the
     * reader had them: the first new line may have to try again. */
    make_line(line, 1000);
    for (int tries = 0; http_log_ring_append(ring, line, LINE_LEN) != 0; tries++) {
        assert_true(tries < 500);
        usleep(10 * 1000);
    }
    for (int i = 1; i < 10; i++) {
        make_line(line, 1000 + i);
        assert_int_equal(http_log_ring_append(ring, line, LINE_LEN), 0);
    }
    assert_int_equal(read_exactly(fds[0], buf, 10 * LINE_LEN), 10 * LINE_LEN);
    assert_lines(buf, 1000, 10);
    for (int i = 0; i < 20; i++) {
        make_line(line, 2000 + i);
        assert_int_equal(http_log_ring_append(ring, line, LINE_LEN), 0);
    }
    assert_int_equal(http_log_writer_stop(w, 5000), 0);
    assert_int_equal(read_exactly(fds[0], buf, 20 * LINE_LEN), 20 * LINE_LEN);
    assert_lines(buf, 2000, 20);
    close(fds[0]);
    close(fds[1]);
}

/* A sink that fails (the reader is gone): its lines are dropped and counted, and the writer
 * does not spin on them or stop. */
static void test_broken_sink_counts_lines(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]); /* writes fail with EPIPE (SIGPIPE ignored below) */
    signal(SIGPIPE, SIG_IGN);
    http_log_writer_t *w = http_log_writer_start(-1, fds[1], 2, RING, RING);
    assert_non_null(w);
    assert_null(http_log_writer_ring(w, 1, HTTP_LOG_ACCESS));
    char line[LINE_LEN];
    make_line(line, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(http_log_ring_append(http_log_writer_ring(w, 1, HTTP_LOG_ERROR), line, LINE_LEN), 0);
    for (int waited = 0; http_log_writer_dropped(w, HTTP_LOG_ERROR) < 5 && waited < 5000; waited += 10)
        usleep(10 * 1000);
    assert_int_equal(http_log_writer_dropped(w, HTTP_LOG_ERROR), 5);
    assert_int_equal(http_log_writer_dropped(w, HTTP_LOG_ACCESS), 0);
    assert_int_equal(http_log_writer_stop(w, 5000), 0);
    close(fds[1]);
}

/* The stop gives up on a sink that stays blocked, and says so; the thread cleans up after
 * itself once its write returns. */
static void test_stop_gives_up_on_a_blocked_sink(void **state)
{
    (void)state;
    int fds[2];
    full_pipe(fds);
    http_log_writer_t *w = http_log_writer_start(fds[1], -1, 1, RING, RING);
    assert_non_null(w);
    char line[LINE_LEN];
    make_line(line, 1);
    assert_int_equal(http_log_ring_append(http_log_writer_ring(w, 0, HTTP_LOG_ACCESS), line, LINE_LEN), 0);
    assert_int_equal(http_log_writer_stop(w, 200), -1);
    /* Unblock it: it writes, ends and frees w (the fds stay open for it). */
    static char sink[8192];
    assert_int_equal(read_exactly(fds[0], sink, 4096 + LINE_LEN), 4096 + LINE_LEN);
}

/* stderr's ring is written a whole line at a time, even a line that wraps around the ring's
 * end, so that util_log's lines from other threads never land inside one. A SEQPACKET socket
 * keeps every write a message of its own. */
static void test_error_ring_writes_whole_lines(void **state)
{
    (void)state;
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
    http_log_writer_t *w = http_log_writer_start(-1, sp[1], 1, RING, RING);
    assert_non_null(w);
    http_log_ring_t *ring = http_log_writer_ring(w, 0, HTTP_LOG_ERROR);
    assert_non_null(ring);
    /* Lines of 100 bytes: 40 fill 4000 of the ring's 4096, the 41st wraps around. */
    char line[100];
    static char got[8 * RING];
    size_t total = 0, messages = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 40; i++) {
            memset(line, 'a' + (char)(i % 26), sizeof(line));
            line[sizeof(line) - 1] = '\n';
            /* The writer frees the room just after its write returns: a few tries. */
            int tries = 0;
            while (http_log_ring_append(ring, line, sizeof(line)) != 0 && ++tries < 100)
                usleep(10000);
            assert_true(tries < 100);
        }
        /* Wait for the writer (bounded), one message at a time. */
        size_t want = (size_t)(round + 1) * 4000;
        for (int idle = 0; total < want && idle < 100;) {
            struct pollfd p = {.fd = sp[0], .events = POLLIN};
            if (poll(&p, 1, 50) <= 0) {
                idle++;
                continue;
            }
            ssize_t n = recv(sp[0], got + total, sizeof(got) - total, 0);
            assert_true(n > 0);
            /* Every message is whole lines: it ends in a newline and each line is 100 bytes. */
            assert_int_equal(n % 100, 0);
            for (ssize_t at = 0; at < n; at += 100) {
                assert_int_equal(got[total + (size_t)at + 99], '\n');
                assert_ptr_equal(memchr(got + total + at, '\n', 100), got + total + at + 99);
            }
            total += (size_t)n;
            messages++;
        }
    }
    assert_int_equal(total, 8000);
    assert_true(messages >= 2);
    assert_int_equal(http_log_writer_stop(w, 5000), 0);
    close(sp[0]);
    close(sp[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_ring_drops_and_counts_then_drains),
        cmocka_unit_test(test_broken_sink_counts_lines),
        cmocka_unit_test(test_stop_gives_up_on_a_blocked_sink),
        cmocka_unit_test(test_error_ring_writes_whole_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
