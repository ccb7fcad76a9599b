"""Distribution shifts of the test characters: strength 0 changes nothing, and each moves the images as named."""

import pytest
import torch

from mlcourse.data.shifts import SHIFT_STRENGTHS, SHIFTS, shifted


@pytest.fixture
def bar():
    """A vertical bar, two pixels wide, in the middle of 28x28 images: (3, 1, 28, 28)."""
    x = torch.zeros(3, 1, 28, 28)
    x[..., 6:22, 13:15] = 1.0
    return x


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_strength_zero_changes_nothing_and_shapes_are_kept(bar, name):
    assert SHIFT_STRENGTHS[name][0] == 0
    assert torch.allclose(shifted(bar, name, 0.0), bar, atol=1e-5)
    many = bar.expand(2, 3, 1, 28, 28)
    strongest = shifted(many, name, SHIFT_STRENGTHS[name][-1])
    assert strongest.shape == many.shape and strongest.min() >= 0 and strongest.max() <= 1
    assert not torch.allclose(strongest, many, atol=1e-2)


def test_each_shift_moves_the_images_as_named(bar):
    columns = lambda x: (x[0, 0].sum(0) > 0.5).nonzero().flatten()  # noqa: E731  columns with ink
    assert len(columns(shifted(bar, "shear", 1.0))) > 2 * len(columns(bar))  # a vertical bar slants
    assert shifted(bar, "scale", 0.5).sum() < 0.4 * bar.sum()  # half the height and width: about a quarter of the ink
    bold = shifted(bar, "stroke", 1.0)
    assert len(columns(bold)) == 4 and torch.equal(bold[bar > 0], bar[bar > 0])  # one more pixel on each side
    assert torch.equal(shifted(bar, "noise", 0.3), shifted(bar, "noise", 0.3))  # the same noise each time
    with pytest.raises(ValueError, match="unknown shift 'blur'"):
        shifted(bar, "blur", 1.0)
