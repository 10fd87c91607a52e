"""``core`` multi-head attention computes in tiles of queries, skipping the
keys that a tile cannot see: the same results as ``steps``' dense loop over
heads, whatever the mask, the tile height or the number of workers, and
whether the forward keeps its exponentiated scores for the backward or the
backward recomputes them."""

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import gradient_check
from attention_from_scratch.common.masks import (
    causal_mask,
    padding_mask,
    sliding_window_mask,
)
from attention_from_scratch.common.parallel import set_workers
from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.measure.complexity import peak_memory

B, T, S, D, H = 2, 37, 29, 12, 3


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request):
    previous = set_workers(request.param)
    yield request.param
    set_workers(previous)


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 16 query rows (the least) at these sizes: several per head."""
    monkeypatch.setattr(core.multi_head, "TILE_SIZE", 16)


@pytest.fixture(params=["recomputed", "kept"])
def scores(request, monkeypatch):
    """Tiles of 16 query rows, so that the backward recomputes the scores in
    strips; or tiles large enough to hold a head, so that the forward keeps
    them."""
    monkeypatch.setattr(core.multi_head, "TILE_SIZE", 16 if request.param == "recomputed"
                        else 2 ** 18)
    return request.param


def _params(rng):
    """Random non-zero parameters, biases included."""
    return {k: v + rng.normal(size=v.shape) * 0.1
            for k, v in init_multi_head_params(D, rng=rng).items()}


def _masks(t, s, rng):
    lengths = np.array([s, s - 11])
    random = rng.random((B, 1, t, s)) < 0.5
    random[0, 0, t // 2] = False                                # a row with nothing
    empty_block = np.ones((t, s), dtype=bool)
    empty_block[16:32] = False                                  # a whole tile with nothing
    return {
        "causal": lambda: causal_mask(t, s),
        "window": lambda: sliding_window_mask(t, 4, s),
        "padding": lambda: padding_mask(lengths, s),            # (B, 1, S)
        "random": lambda: random,                               # (B, 1, T, S)
        "empty tile": lambda: empty_block,
    }


CASES = [(name, t, s) for t, s in [(T, S), (S, T), (T, T), (1, S)]
         for name in ["causal", "window", "padding", "random", "empty tile"]
         if s >= t or name not in ("causal", "window")]   # bottom-right causal needs S >= T


@pytest.mark.parametrize("name, t, s", CASES)
def test_tiled_core_equals_steps(name, t, s, workers, scores):
    rng = np.random.default_rng(1)
    x_q, x_kv = rng.normal(size=(B, t, D)), rng.normal(size=(B, s, D))
    params = _params(rng)
    mask = _masks(t, s, rng)[name]()
    bias = rng.normal(size=(1, H, t, s))
    dout = rng.normal(size=(B, t, D))
    results = []
    for impl in (steps, core):
        out, cache = impl.multi_head.multi_head_attention_forward(
            x_q, x_kv, params, n_heads=H, mask=mask, bias=bias)
        results.append((out, cache.weights, *impl.multi_head.multi_head_attention_backward(
            dout, cache)))
    assert (cache.exp_scores is not None) == (scores == "kept")
    (out_s, w_s, dq_s, dkv_s, dp_s), (out_c, w_c, dq_c, dkv_c, dp_c) = results
    assert np.all(np.isfinite(out_c)) and np.all(np.isfinite(dkv_c))
    np.testing.assert_allclose(out_c, out_s, atol=1e-12)
    np.testing.assert_allclose(w_c, w_s, atol=1e-12)
    np.testing.assert_allclose(dq_c, dq_s, atol=1e-12)
    np.testing.assert_allclose(dkv_c, dkv_s, atol=1e-12)
    for key in dp_s:
        np.testing.assert_allclose(dp_c[key], dp_s[key], atol=1e-11, err_msg=key)


@pytest.mark.parametrize("name", ["causal", "padding", "empty tile"])
def test_tiled_core_backward_matches_finite_differences(name, scores):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, T, D))
    params = _params(rng)
    mask = _masks(T, T, rng)[name]()
    result = gradient_check(core.multi_head.self_multi_head_attention_forward,
                            core.multi_head.self_multi_head_attention_backward, (x, params),
                            kwargs={"n_heads": H, "mask": mask}, rng=rng, n_entries=40)
    assert result.passed, result


def test_workers_do_not_change_a_single_bit(small_tiles):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    params = {k: v.astype(np.float32) for k, v in init_multi_head_params(D, rng=rng).items()}
    dout = rng.normal(size=(B, T, D)).astype(np.float32)
    results = []
    for n in (1, 2):
        previous = set_workers(n)
        try:
            out, cache = core.multi_head.self_multi_head_attention_forward(
                x, params, n_heads=H, mask=causal_mask(T))
            dx, dparams = core.multi_head.self_multi_head_attention_backward(dout, cache)
        finally:
            set_workers(previous)
        results.append((out, dx, *dparams.values()))
    for one, two in zip(*results, strict=True):
        assert np.array_equal(one, two)


def test_a_causal_mask_skips_the_keys_after_each_tile(small_tiles):
    tiles = core.multi_head._tiles(causal_mask(T), T, T)
    assert len(tiles) == 3                                       # 16 + 16 + 5 rows
    for rows, cols, (_, partly) in tiles:                        # (..., keys)
        assert (cols.start, cols.stop) == (0, rows.stop)         # nothing right of the tile
        # the mask is applied only on the tile's own diagonal block
        assert (cols.start + partly.start, cols.start + partly.stop) == (rows.start + 1,
                                                                         rows.stop)


def test_a_padding_mask_skips_keys_no_sequence_sees(small_tiles):
    mask = padding_mask(np.array([9, 20]), T)[:, None]           # (B, 1, 1, S)
    for _, cols, (_, partly) in core.multi_head._tiles(mask, T, T):
        assert (cols.start, cols.stop) == (0, 20)                # keys 20.. are padding for all
        assert (partly.start, partly.stop) == (9, 20)            # seen by one sequence only


def test_no_mask_is_one_tile_of_all_keys_per_block(small_tiles):
    tiles = core.multi_head._tiles(None, T, S)
    assert [(r.start, r.stop) for r, _, _ in tiles] == [(0, 16), (16, 32), (32, T)]
    assert all((c.start, c.stop, p) == (0, S, None) for _, c, p in tiles)


def test_the_backward_strips_of_a_causal_mask_start_at_their_first_key(small_tiles):
    strips = core.multi_head._strips(causal_mask(T), T, T)
    assert [(c.start, c.stop) for _, c, _ in strips] == [(0, 16), (16, 32), (32, T)]
    for rows, cols, partly in strips:
        assert (rows.start, rows.stop) == (cols.start, T)        # the queries that see them
        _, hidden, every = partly                                # (..., rows, all keys)
        assert every == slice(None)
        # only the queries of the diagonal block miss some of the block's keys
        assert (rows.start + hidden.start, rows.start + hidden.stop) == (cols.start,
                                                                         cols.stop - 1)


def test_a_strip_of_keys_no_query_sees_is_skipped(small_tiles):
    mask = padding_mask(np.array([9, 20]), T)[:, None]           # (B, 1, 1, S)
    strips = core.multi_head._strips(mask, T, T)
    assert [rows for rows, _, _ in strips][2] is None            # keys 32..: padding for all
    rows, _, (_, hidden, _) = strips[1]                          # keys 16..31
    assert (rows.start, rows.stop) == (0, T)                     # sequence 1 sees 16..19
    assert (hidden.start, hidden.stop) == (0, T)                 # sequence 0 none of them


def test_the_cache_keeps_no_array_of_t_by_s_past_one_tile(small_tiles):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, T, D))
    params = init_multi_head_params(D, rng=rng)
    _, cache = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                 mask=causal_mask(T))
    kept = [value for value in cache if isinstance(value, np.ndarray) and value.ndim > 1]
    assert kept and all(value.shape[-2:] != (T, T) for value in kept
                        if value is not cache.mask)              # the mask: the caller's own
    assert cache.row_max.shape == cache.total.shape == (B, H, T, 1)
    assert cache.weights.shape == (B, H, T, T)                   # recomputed on demand


def test_kept_scores_are_read_not_recomputed_and_strips_recompute_them(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(B, T, D))
    params = init_multi_head_params(D, rng=rng)
    dout = rng.normal(size=x.shape)
    calls = []
    exp_tile = core.multi_head._exp_tile

    def counted_exp_tile(*args, **kwargs):
        calls.append(kwargs)
        return exp_tile(*args, **kwargs)

    monkeypatch.setattr(core.multi_head, "_exp_tile", counted_exp_tile)
    for tile_size, kept in [(2 ** 18, True), (16, False)]:       # T T = 1369 <= 2^18
        monkeypatch.setattr(core.multi_head, "TILE_SIZE", tile_size)
        _, cache = core.multi_head.self_multi_head_attention_forward(
            x, params, n_heads=H, mask=causal_mask(T))
        assert (cache.exp_scores is not None) == kept
        calls.clear()
        core.multi_head.self_multi_head_attention_backward(dout, cache)
        recomputed = [kwargs for kwargs in calls if kwargs.get("shifted")]
        assert (len(recomputed) == 0) == kept and len(calls) == len(recomputed)


def test_a_head_keeps_its_scores_up_to_one_tile_of_them():
    assert core.multi_head.TILE_SIZE == 512 * 512
    assert core.multi_head._keeps_scores(512, 512) and core.multi_head._keeps_scores(1, 2 ** 18)
    assert not core.multi_head._keeps_scores(513, 512)


@pytest.mark.parametrize("up_to, tile_size, kept", [(0, 2 ** 18, False), (T * T, 16, True),
                                                   (T * T - 1, 2 ** 18, False)])
def test_keep_scores_up_to_moves_the_cut_off_and_changes_no_gradient(up_to, tile_size, kept,
                                                                    monkeypatch):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(B, T, D))
    params = _params(rng)
    dout = rng.normal(size=x.shape)
    monkeypatch.setattr(core.multi_head, "TILE_SIZE", tile_size)
    monkeypatch.setattr(core.multi_head, "KEEP_SCORES_UP_TO", up_to)
    out, cache = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                   mask=causal_mask(T))
    assert (cache.exp_scores is not None) == kept
    dx, dparams = core.multi_head.self_multi_head_attention_backward(dout, cache)
    steps_out, steps_cache = steps.multi_head.self_multi_head_attention_forward(
        x, params, n_heads=H, mask=causal_mask(T))
    dx_steps, dparams_steps = steps.multi_head.self_multi_head_attention_backward(dout,
                                                                                  steps_cache)
    np.testing.assert_allclose(out, steps_out, atol=1e-12)
    np.testing.assert_allclose(dx, dx_steps, atol=1e-12)
    for key in dparams:
        np.testing.assert_allclose(dparams[key], dparams_steps[key], atol=1e-11, err_msg=key)


def test_kept_scores_are_zero_where_masked_and_give_the_weights():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(B, T, D))
    params = init_multi_head_params(D, rng=rng)
    mask = padding_mask(np.array([T - 5, 9]), T)[:, None]        # (B, 1, 1, S)
    _, cache = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                 mask=mask)
    assert cache.exp_scores.shape == (B, H, T, T)
    assert np.all(cache.exp_scores[:, :, :, T - 5:] == 0)       # never computed: no one sees
    assert np.all(cache.exp_scores[1, :, :, 9:] == 0) and np.all(cache.exp_scores[0, ..., :-5] > 0)
    _, steps_cache = steps.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                       mask=mask)
    np.testing.assert_allclose(cache.weights, steps_cache.weights, atol=1e-12)


@pytest.mark.parametrize("name", ["causal", "padding", "empty tile"])
def test_kept_scores_survive_other_tiles_in_the_backward(name, monkeypatch):
    # the backward walks its own strips over the kept scores, whatever tiles the forward used
    rng = np.random.default_rng(9)
    x = rng.normal(size=(B, T, D))
    params = _params(rng)
    mask = _masks(T, T, rng)[name]()
    dout = rng.normal(size=x.shape)
    _, cache = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                 mask=mask)
    assert cache.exp_scores is not None
    monkeypatch.setattr(core.multi_head, "TILE_SIZE", 16)       # strips of 16 keys now
    dx, dparams = core.multi_head.self_multi_head_attention_backward(dout, cache)
    _, steps_cache = steps.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                       mask=mask)
    dx_steps, dparams_steps = steps.multi_head.self_multi_head_attention_backward(dout,
                                                                                  steps_cache)
    np.testing.assert_allclose(dx, dx_steps, atol=1e-12)
    for key in dparams:
        np.testing.assert_allclose(dparams[key], dparams_steps[key], atol=1e-11, err_msg=key)


def test_several_leading_axes_and_few_chunks_equal_steps(workers):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 6, D))           # (B1, B2, T, D): T S small, so several
    params = _params(rng)                        # sequences a chunk
    mask = rng.random((2, 3, 1, 6, 6)) < 0.7                     # (B1, B2, 1, T, S)
    dout = rng.normal(size=x.shape)
    results = []
    for impl in (steps, core):
        out, cache = impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                       mask=mask)
        results.append((out, *impl.multi_head.self_multi_head_attention_backward(dout, cache)))
    (out_s, dx_s, dp_s), (out_c, dx_c, dp_c) = results
    np.testing.assert_allclose(out_c, out_s, atol=1e-12)
    np.testing.assert_allclose(dx_c, dx_s, atol=1e-12)
    for key in dp_s:
        np.testing.assert_allclose(dp_c[key], dp_s[key], atol=1e-11, err_msg=key)


def test_small_sequences_share_a_chunk_and_large_ones_get_their_own():
    assert core.multi_head._chunks(64, 4, 10, 10) == [(slice(0, 64), h) for h in range(4)]
    assert core.multi_head._chunks(2, 3, 1024, 1024) == [
        (slice(b, b + 1), h) for h in range(3) for b in range(2)]


def test_a_mask_shared_along_one_of_two_leading_axes_is_not_spread_over_the_heads():
    # (1, 3, T, S) against queries (2, 3, T, D): NumPy must copy it to flatten the leading
    # axes, but at most its own entries per sequence, not once per head as well
    rng = np.random.default_rng(6)
    t, d, h = 64, 16, 8
    x = rng.normal(size=(2, 3, t, d))
    params = init_multi_head_params(d, rng=rng)

    def run(mask):
        def forward_backward():
            _, cache = core.multi_head.self_multi_head_attention_forward(x, params,
                                                                         n_heads=h, mask=mask)
            core.multi_head.self_multi_head_attention_backward(x, cache)
        return peak_memory(forward_backward)

    per_sequence = run(np.ones((2, 3, t, t), dtype=bool))    # nothing to copy
    shared = run(np.ones((1, 3, t, t), dtype=bool))
    assert shared - per_sequence <= 2 * 3 * t * t            # one bool per sequence and entry


def test_reusing_the_mask_or_bias_array_after_the_forward_changes_nothing(small_tiles):
    # the backward recomputes the scores, so the cache must hold its own mask and bias
    rng = np.random.default_rng(7)
    x, dout = rng.normal(size=(B, T, D)), rng.normal(size=(B, T, D))
    params = init_multi_head_params(D, rng=rng)
    mask, bias = causal_mask(T).copy(), rng.normal(size=(1, H, T, T))
    forward = core.multi_head.self_multi_head_attention_forward
    _, cache = forward(x, params, n_heads=H, mask=mask, bias=bias)
    expected = core.multi_head.self_multi_head_attention_backward(dout, cache)[0]
    weights = cache.weights
    _, cache = forward(x, params, n_heads=H, mask=mask, bias=bias)
    mask[:] = True                                               # the caller reuses its arrays
    bias[:] = 0.0
    np.testing.assert_array_equal(core.multi_head.self_multi_head_attention_backward(
        dout, cache)[0], expected)
    np.testing.assert_array_equal(cache.weights, weights)


def test_a_broadcast_mask_is_kept_without_spreading_it_out():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(64, T, D))
    mask = np.broadcast_to(causal_mask(T), (64, 1, T, T))       # a view, one (T, T) array
    _, cache = core.multi_head.self_multi_head_attention_forward(
        x, init_multi_head_params(D, rng=rng), n_heads=H, mask=mask)
    assert cache.mask.size == T * T
