#include <stdio.h>
#include "ringbuf.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static void test_push_pop(void) {
    ringbuf rb; int v = 0;
    rb_init(&rb);
    CHECK(rb_push(&rb, 1));
    CHECK(rb_push(&rb, 2));
    CHECK(rb_pop(&rb, &v) && v == 1);
    CHECK(rb_count(&rb) == 1);
}

static void test_full(void) {
    ringbuf rb;
    rb_init(&rb);
    for (int i = 0; i < 8; i++) CHECK(rb_push(&rb, i));
    CHECK(!rb_push(&rb, 99));
}

static void test_wraps_around(void) {
    ringbuf rb; int v = 0;
    rb_init(&rb);
    for (int round = 0; round < 20; round++) {
        CHECK(rb_push(&rb, round));
        CHECK(rb_pop(&rb, &v) && v == round);
    }
    CHECK(rb_count(&rb) == 0);
}

int main(void) {
    test_push_pop();
    test_full();
    test_wraps_around();
    printf("%s\n", failures ? "some tests failed" : "all tests passed");
    return failures ? 1 : 0;
}
