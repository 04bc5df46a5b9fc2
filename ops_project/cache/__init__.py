"""Cache warming: availability in Redis (and, next, the CDN) computed from the booking database."""
