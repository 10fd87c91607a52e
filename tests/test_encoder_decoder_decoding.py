import numpy as np
import pytest

from attention_from_scratch.common.params import (
    init_decoder_only_params,
    init_encoder_decoder_params,
)
from attention_from_scratch.inference.encoder_decoder import (
    greedy_decoder_only,
    greedy_encoder_decoder,
)

V, D, F, H = 9, 8, 12, 2


def _sharp(params, rng):
    """Larger random weights: argmax ties are then out of the question."""
    return {k: v + rng.normal(scale=0.5, size=v.shape) for k, v in params.items()}


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("tied", [False, True])
def test_encoder_decoder_cached_equals_uncached(rng, norm, tied):
    params = _sharp(init_encoder_decoder_params(V, D, F, n_enc=2, n_dec=2, norm=norm,
                                                tied=tied, rng=rng), rng)
    src = np.array([[3, 4, 5, 6, 7], [8, 3, 0, 0, 0], [5, 0, 0, 0, 0]])   # lengths 5, 2, 1
    cached = greedy_encoder_decoder(params, src, n_heads=H, max_new=6, bos=1, eos=2,
                                    norm=norm)
    full = greedy_encoder_decoder(params, src, n_heads=H, max_new=6, bos=1, eos=2, norm=norm,
                                  use_cache=False)
    assert cached.shape == (3, 6)
    np.testing.assert_array_equal(cached, full)
    alone = greedy_encoder_decoder(params, src[1:2, :2], n_heads=H, max_new=6, bos=1, eos=2,
                                   norm=norm)
    np.testing.assert_array_equal(alone[0], cached[1])    # padding changes nothing


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("tied", [False, True])
def test_decoder_only_batch_of_different_lengths(rng, norm, tied):
    params = _sharp(init_decoder_only_params(V, D, F, n_layers=2, norm=norm, tied=tied,
                                             rng=rng), rng)
    prompts = [[3, 4, 5, 6], [7], [8, 3]]
    cached = greedy_decoder_only(params, prompts, n_heads=H, max_new=5, norm=norm)
    full = greedy_decoder_only(params, prompts, n_heads=H, max_new=5, norm=norm,
                               use_cache=False)
    assert cached.shape == (3, 5)
    np.testing.assert_array_equal(cached, full)


def test_empty_prompt_is_refused(rng):
    params = init_decoder_only_params(V, D, F, n_layers=1, rng=rng)
    with pytest.raises(ValueError, match="prompts must be a non-empty list"):
        greedy_decoder_only(params, [[3], []], n_heads=H, max_new=2)
