import numpy as np
import pytest

import array_api_strict as xps
from refimpl import backend


def test_namespace_of_numpy_inputs():
    xp, device = backend.get_namespace(np.ones(2), None, np.zeros(3))
    assert xp.__name__ == "array_api_compat.numpy" and device == "cpu"


def test_mixed_namespaces_name_both_libraries():
    with pytest.raises(TypeError, match="different array libraries .*numpy.ndarray.*array_api_strict"):
        backend.get_namespace(np.ones(2), xps.ones(2))


def test_named_arguments_are_named_in_errors():
    with pytest.raises(TypeError, match="V and X come from different array libraries"):
        backend.get_namespace(V=np.ones(2), X=xps.ones(2))
    with pytest.raises(TypeError, match="V and X live on different devices"):
        backend.get_namespace(V=xps.ones(2), X=xps.ones(2, device=xps.Device("device1")))
    with pytest.raises(TypeError, match="X must be an array .* got list"):
        backend.get_namespace(V=np.ones(2), X=[1.0, 2.0])


def test_mixed_devices_name_both_devices():
    a = xps.ones(2)
    b = xps.ones(2, device=xps.Device("device1"))
    with pytest.raises(TypeError, match="CPU_DEVICE.*device1|device1.*CPU_DEVICE"):
        backend.get_namespace(a, b)


def test_no_array_argument():
    with pytest.raises(TypeError, match="at least one array"):
        backend.get_namespace(None)


def test_default_backend_precedence(monkeypatch):
    monkeypatch.setenv("REFIMPL_BACKEND", "array_api_strict")
    assert backend.get_backend().name == "array_api_strict"
    with backend.use_backend("numpy") as be:
        assert be.name == "numpy" and backend.get_backend().name == "numpy"
    assert backend.get_backend().name == "array_api_strict"
    backend.set_backend("numpy")
    try:
        assert backend.get_backend().name == "numpy"
    finally:
        backend.set_backend(None)
    monkeypatch.delenv("REFIMPL_BACKEND")
    assert backend.get_backend().name == "numpy"


@pytest.mark.parametrize("name, error", [("torch", ValueError), ("numpy:gpu", ValueError),
                                         ("array_api_strict:nowhere", ValueError), (3, TypeError)])
def test_bad_backend_names(name, error):
    with pytest.raises(error):
        backend.set_backend(name)


def test_available_backends():
    names = backend.available_backends(devices=True)
    assert names[:3] == ["numpy", "array_api_strict", "array_api_strict:device1"]


@pytest.mark.parametrize("name", backend.available_backends(devices=True))
def test_round_trip_through_backend(name):
    x = np.arange(6.0).reshape(2, 3)
    on_backend = backend.from_numpy(x, name, dtype="float32")
    xp, device = backend.get_namespace(on_backend)
    assert xp is backend.backend_namespace(name).xp
    assert device == backend.backend_namespace(name).device
    back = backend.to_numpy(on_backend)
    assert back.dtype == np.float32 and np.array_equal(back, x)
    assert backend.device(on_backend) == device  # the portable spelling of x.device


def test_second_device_refuses_hidden_host_conversion():
    a = backend.from_numpy(np.ones(3), "array_api_strict:device1")
    with pytest.raises(RuntimeError):
        np.asarray(a)
