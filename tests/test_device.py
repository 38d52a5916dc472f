import pytest
import torch

from helpers.device import available_devices, get_device, make_generator, set_seed
from helpers.params import ParameterError


def test_cpu_and_auto():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("auto").type == available_devices()[0]
    assert available_devices()[-1] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_names_parameter_and_what_is_available():
    with pytest.raises(ParameterError) as info:
        get_device("cuda")
    message = str(info.value)
    assert message.startswith("DEVICE = 'cuda' is not available on this machine")
    assert "'cpu'" in message and "'auto'" in message


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "tpu", 0])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(ParameterError, match="DEVICE = .* is not allowed"):
        get_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    with pytest.raises(ParameterError, match="numbered from 0"):
        get_device(f"cuda:{torch.cuda.device_count()}")


def test_set_seed_makes_draws_repeat():
    set_seed(7)
    first = torch.rand(3), torch.randn(2)
    set_seed(7)
    second = torch.rand(3), torch.randn(2)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_generator_is_independent_of_global_state():
    expected = torch.rand(4, generator=make_generator(3))
    torch.manual_seed(99)
    torch.rand(10)
    assert torch.equal(torch.rand(4, generator=make_generator(3)), expected)
