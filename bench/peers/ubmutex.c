/*
 * ubmutex: one ub_ctx_config at a time, for OpenDKIM under LD_PRELOAD.
 *
 * Debian's OpenDKIM 2.11 reads its ResolverConfiguration with libunbound's
 * ub_ctx_config, from several threads at once under concurrent milter
 * connections; libunbound's config parser (flex) is not reentrant, and
 * OpenDKIM dies with "fatal flex scanner internal error". Later OpenDKIM
 * forks put this same lock around the call. With it the peers can be
 * measured at 8 and 64 sessions, as the benchmark asks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

struct ub_ctx;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int ub_ctx_config(struct ub_ctx *ctx, const char *fname)
{
	static int (*real)(struct ub_ctx *, const char *);
	int r;

	pthread_mutex_lock(&lock);
	if (real == NULL)
		real = (int (*)(struct ub_ctx *, const char *))dlsym(RTLD_NEXT, "ub_ctx_config");
	r = real != NULL ? real(ctx, fname) : -1;
	pthread_mutex_unlock(&lock);
	return r;
}
