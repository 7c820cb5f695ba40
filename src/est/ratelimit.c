/* Per-client-address request rate limit: a token bucket per address in a fixed-size table.
 * A new address takes a free slot or the one seen least recently, so a flood of addresses
 * cannot grow memory; at worst an evicted address starts again with a full bucket. */
#include <stdio.h>
#include <string.h>

#include "est/internal.h"

void est_ratelimit_init(struct est_ratelimit *rl, double rate, double burst)
{
    memset(rl, 0, sizeof(*rl));
    rl->rate = rate > 0 ? rate : EST_RATE_DEFAULT;
    rl->burst = burst >= 1 ? burst : (rate > 0 && rate * 2 >= 1 ? rate * 2 : EST_BURST_DEFAULT);
}

/* Slots are taken first to last and never emptied, so the used ones are a prefix of the table:
 * the first free slot ends the search (one address is found at once, not after 1024). */
static struct est_bucket *find(struct est_ratelimit *rl, const char *addr, double now)
{
    struct est_bucket *victim = NULL;
    for (size_t i = 0; i < EST_RATE_SLOTS; i++) {
        struct est_bucket *b = &rl->slots[i];
        if (b->addr[0] == '\0') {
            victim = b;
            break;
        }
        if (strcmp(b->addr, addr) == 0)
            return b;
        if (victim == NULL || b->last < victim->last)
            victim = b;
    }
    snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
    victim->tokens = rl->burst;
    victim->last = now;
    return victim;
}

int est_ratelimit_take(struct est_ratelimit *rl, const char *addr, double now, long *retry_after)
{
    struct est_bucket *b = find(rl, addr, now);
    double elapsed = now - b->last;
    if (elapsed > 0) {
        b->tokens += elapsed * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
    }
    b->last = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 1;
    }
    long wait = (long)((1 - b->tokens) / rl->rate) + 1;
    *retry_after = wait > 0 ? wait : 1;
    return 0;
}
