"""The causal flash attention timing: its runs agree before they are timed."""

import numpy as np

from attention_from_scratch.measure.flash_timing import flash_jobs, interleaved_medians


def test_the_jobs_agree_and_are_timed():
    jobs = flash_jobs((1, 2, 40, 8), block_size=16)
    assert {"core flash, causal", "core dense, causal mask"} <= set(jobs)
    outputs = [job() for job in jobs.values()]
    for other in outputs[1:]:
        for got, want in zip(other, outputs[0], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    medians = interleaved_medians(jobs, rounds=2, settle=0)
    assert set(medians) == set(jobs) and all(s > 0 for s in medians.values())
