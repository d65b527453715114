/* Unit tests for the CUDA backend's entry points. Without a GPU (CI) they check that creation
 * fails cleanly with a message; with one they run qwen2-tiny for a step, compare with the
 * golden top-1 and check that bad batches are refused with a clear error. The full GPU checks
 * (golden, batched = alone, sampling, CPU vs CUDA) are bench/cuda_bench.c on the device. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "util/err.h"

static void test_create_or_refuse(void **state) {
    (void)state;
    char *dir = tu_shared("models/qwen2-tiny");
    ragd_cuda_opts o = {0, 0.5f, 8, 256};
    ragd_backend *be = (ragd_backend *)0x1;
    ragd_err e = {0};
    int rc = ragd_cuda_backend_create(dir, &o, &be, &e);
    if (!ragd_cuda_available()) {
        assert_int_not_equal(rc, RAGD_OK);
        assert_null(be);
        assert_true(strlen(e.msg) > 0);
        assert_true(rc == RAGD_EDEVICE || rc == RAGD_EUNSUPPORTED);
        free(dir);
        return;
    }
    assert_int_equal(rc, RAGD_OK);
    assert_string_equal(be->name, "cuda");
    assert_int_equal(be->cfg.hidden, 64);
    assert_int_equal(be->ops->kv_init(be, 16, 64, &e), RAGD_OK);
    const int V = be->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)V);
    int32_t tok = 220, bt[4] = {0, 1, 2, 3};
    ragd_batch_seq s = {0};
    s.tokens = &tok;
    s.n_new = 1;
    s.block_table = bt;
    s.n_blocks = 4;
    s.want_logits = true;
    ragd_batch b = {1, &s};
    assert_int_equal(be->ops->forward(be, &b, lg, &e), RAGD_OK);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (lg[i] > lg[best]) best = i;
    assert_int_equal(best, 220); /* golden case 0: top-1 220 with a margin of 19 */
    int32_t bad = V + 5;
    s.tokens = &bad;
    assert_int_equal(be->ops->forward(be, &b, lg, &e), RAGD_EINVAL);
    assert_non_null(strstr(e.msg, "out of range"));
    s.tokens = &tok;
    s.n_past = 100; /* block table of 4 x 16 does not cover position 100 */
    assert_int_equal(be->ops->forward(be, &b, lg, &e), RAGD_EINVAL);
    free(lg);
    be->ops->destroy(be);
    free(dir);
}

static void test_missing_model(void **state) {
    (void)state;
    ragd_backend *be = NULL;
    ragd_err e = {0};
    int rc = ragd_cuda_backend_create("/nonexistent/model", NULL, &be, &e);
    assert_int_not_equal(rc, RAGD_OK);
    assert_null(be);
    assert_true(strlen(e.msg) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_or_refuse),
        cmocka_unit_test(test_missing_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
