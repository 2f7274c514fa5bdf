#ifndef RINGBUF_H
#define RINGBUF_H
#include <stddef.h>

/* A fixed-size ring buffer of ints. */
typedef struct {
    int data[8];
    size_t head, count;
} ringbuf;

void rb_init(ringbuf *rb);
int rb_push(ringbuf *rb, int v);   /* 0 when full */
int rb_pop(ringbuf *rb, int *out); /* 0 when empty */
size_t rb_count(const ringbuf *rb);

#endif
