/*
 * The ceiling for logins: raw Argon2id verifies per second on N threads with hydrant's
 * parameters, measured next to the login scenario (bench/auth/run).
 * usage: argon2_rate THREADS SECONDS [memory_kib iterations parallelism]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"

static char hash[AUTH_HASH_MAX];
static atomic_long verified;
static atomic_int stop;

static void *verifier(void *arg)
{
    while (!atomic_load(&stop))
        if (auth_password_verify("correct horse battery", 21, hash) == AUTH_VERIFY_MATCH)
            atomic_fetch_add(&verified, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2, seconds = argc > 2 ? atoi(argv[2]) : 5;
    auth_argon2_params_t p = {argc > 3 ? (uint32_t)atoi(argv[3]) : 19456,
                              argc > 4 ? (uint32_t)atoi(argv[4]) : 2, argc > 5 ? (uint32_t)atoi(argv[5]) : 1};
    if (threads < 1 || threads > 64 || seconds < 1 || seconds > 600 ||
        auth_password_hash("correct horse battery", 21, &p, hash, sizeof(hash)) != 0)
        return 2;
    pthread_t t[64];
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, verifier, NULL);
    struct timespec nap = {seconds, 0};
    nanosleep(&nap, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double elapsed = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    printf("%.1f\n", (double)atomic_load(&verified) / elapsed);
    return 0;
}
