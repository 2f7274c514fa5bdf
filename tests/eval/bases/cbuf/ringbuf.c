#include "ringbuf.h"

void rb_init(ringbuf *rb) { rb->head = 0; rb->count = 0; }

int rb_push(ringbuf *rb, int v) {
    if (rb->count == 8) return 0;
    rb->data[(rb->head + rb->count) % 8] = v;
    rb->count++;
    return 1;
}

int rb_pop(ringbuf *rb, int *out) {
    if (rb->count == 0) return 0;
    *out = rb->data[rb->head];
    rb->head = rb->head + 1;
    rb->count--;
    return 1;
}

size_t rb_count(const ringbuf *rb) { return rb->count; }
