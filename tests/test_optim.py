"""Optimizers and learning-rate schedulers: torch's rules, checkpoint state, argument checks."""
import io
import json
import math

import numpy as np
import pytest

import cnnative.optim
from cnnative.optim import (SGD, Adam, AdamW, CosineAnnealing, OneCycle, Optimizer, RMSprop,
                            StepLR)

RNG = np.random.default_rng(11)

# (class, options): every option of every optimizer, with torch's names and meanings.
CASES = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (RMSprop, dict()),
    (RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    (RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, dict(lr=0.005, alpha=0.95, eps=1e-6, weight_decay=0.05, momentum=0.5,
                   centered=True)),
]
CASE_IDS = [f"{cls.__name__}-{options}" for cls, options in CASES]


def problem(dtype=np.float64, steps=5, seed=0):
    """Two parameters and a gradient for each at every step."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(steps)]
    return params, grads


def run(optimizer, params, grads):
    for step in grads:
        optimizer.step(list(zip(params, step)))
    return params


# -- the update rules, written out from torch's documentation ----------------------------------

def reference(cls, params, grads_per_step, lr=None, momentum=0.0, weight_decay=None,
              nesterov=False, betas=(0.9, 0.999), eps=1e-8, alpha=0.99, centered=False):
    defaults = {SGD: (0.01, 0.0), Adam: (0.001, 0.0), AdamW: (0.001, 0.01), RMSprop: (0.01, 0.0)}
    lr = defaults[cls][0] if lr is None else lr
    weight_decay = defaults[cls][1] if weight_decay is None else weight_decay
    params = [p.copy() for p in params]
    first = [np.zeros_like(p) for p in params]   # momentum buffer / m / grad average
    second = [np.zeros_like(p) for p in params]  # v / square average
    buffers = [None] * len(params)
    for t, grads in enumerate(grads_per_step, start=1):
        for i, (p, g) in enumerate(zip(params, grads)):
            if cls is AdamW:
                p -= lr * weight_decay * p
            else:
                g = g + weight_decay * p
            if cls is SGD:
                if momentum:
                    buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + g
                    g = g + momentum * buffers[i] if nesterov else buffers[i]
                p -= lr * g
            elif cls in (Adam, AdamW):
                first[i] = betas[0] * first[i] + (1 - betas[0]) * g
                second[i] = betas[1] * second[i] + (1 - betas[1]) * g * g
                m_hat = first[i] / (1 - betas[0] ** t)
                v_hat = second[i] / (1 - betas[1] ** t)
                p -= lr * m_hat / (np.sqrt(v_hat) + eps)
            else:
                second[i] = alpha * second[i] + (1 - alpha) * g * g
                variance = second[i]
                if centered:
                    first[i] = alpha * first[i] + (1 - alpha) * g
                    variance = variance - first[i] ** 2
                step = g / (np.sqrt(variance) + eps)
                if momentum:
                    buffers[i] = step if buffers[i] is None else momentum * buffers[i] + step
                    step = buffers[i]
                p -= lr * step
    return params


@pytest.mark.parametrize("cls, options", CASES, ids=CASE_IDS)
def test_optimizers_follow_torch_rules(cls, options):
    params, grads = problem()
    expected = reference(cls, params, grads, **options)
    run(cls(**options), params, grads)
    for actual, wanted in zip(params, expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, options", CASES, ids=CASE_IDS)
def test_optimizers_match_torch(cls, options, dtype):
    torch = pytest.importorskip("torch")
    params, grads = problem(dtype)
    tensors = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    theirs = getattr(torch.optim, cls.__name__)(tensors, **options)
    ours = cls(**options)
    for step in grads:
        ours.step(list(zip(params, step)))
        for tensor, g in zip(tensors, step):
            tensor.grad = torch.tensor(g)
        theirs.step()
    for mine, tensor in zip(params, tensors):
        wanted = tensor.detach().numpy()
        assert mine.dtype == dtype
        if dtype == np.float64:
            np.testing.assert_allclose(mine, wanted, rtol=1e-12, atol=1e-14)
        else:
            # torch's kernels fuse multiply-adds, so the last bits differ: allow a few units in
            # the last place of the parameter's scale.
            ulps = np.abs(mine - wanted) / np.spacing(np.abs(wanted).max())
            assert ulps.max() <= 4, ulps.max()


def test_adamw_decay_is_decoupled():
    # With a zero gradient Adam's moments stay zero, so only the decay moves the parameter.
    p = np.array([1.0, -2.0])
    AdamW(lr=0.1, weight_decay=0.5).step([(p, np.zeros(2))])
    np.testing.assert_array_equal(p, [0.95, -1.9])
    q = np.array([1.0, -2.0])
    Adam(lr=0.1, weight_decay=0.5).step([(q, np.zeros(2))])
    assert not np.allclose(q, [0.95, -1.9])  # L2 decay goes through Adam's normalisation


@pytest.mark.parametrize("call, error, message", [
    (lambda: SGD(-1), ValueError, "SGD: lr must be a finite number >= 0"),
    (lambda: SGD(0.1, momentum="x"), TypeError, "SGD: momentum must be a real number"),
    (lambda: SGD(0.1, nesterov=True), ValueError, "SGD: nesterov needs a momentum"),
    (lambda: SGD(0.1, 0.9, nesterov="yes"), TypeError, "SGD: nesterov must be True or False"),
    (lambda: Adam(betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must lie in \[0, 1\)"),
    (lambda: Adam(betas=(-0.1, 0.9)), ValueError, r"Adam: betas\[0\] must be a finite number"),
    (lambda: Adam(betas=0.9), ValueError, "Adam: betas must be a pair"),
    (lambda: Adam(weight_decay=float("nan")), ValueError, "Adam: weight_decay must be a finite"),
    (lambda: AdamW(eps=-1e-8), ValueError, "AdamW: eps must be a finite number >= 0"),
    (lambda: AdamW(lr=np.ones(2)), ValueError, "AdamW: lr must be a scalar"),
    (lambda: RMSprop(alpha=1.5), ValueError, r"RMSprop: alpha must lie in \[0, 1\]"),
    (lambda: RMSprop(momentum=-0.5), ValueError, "RMSprop: momentum must be a finite number"),
    (lambda: RMSprop(centered=None), TypeError, "RMSprop: centered must be True or False"),
    (lambda: RMSprop(eps=float("inf")), ValueError, "RMSprop: eps must be a finite number"),
])
def test_optimizer_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_optimizer_refuses_a_different_parameter_list():
    optimizer = SGD(0.1, momentum=0.9)
    p = np.zeros(3)
    optimizer.step([(p, np.ones(3))])
    with pytest.raises(ValueError, match="got 2 parameters, but the optimizer's state is for 1"):
        optimizer.step([(p, np.ones(3)), (p, np.ones(3))])


# -- checkpoint state ---------------------------------------------------------------------------

def through_checkpoint(state):
    """``state`` as a no-pickle checkpoint stores it: config as JSON, arrays in an .npz."""
    buffer = io.BytesIO()
    np.savez(buffer, **state["arrays"])
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    return {"type": state["type"], "config": json.loads(json.dumps(state["config"])),
            "arrays": arrays}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, options", CASES, ids=CASE_IDS)
def test_resuming_from_a_state_dict_is_bit_exact(cls, options, dtype):
    params, grads = problem(dtype, steps=7)
    uninterrupted = run(cls(**options), [p.copy() for p in params], grads)
    first = cls(**options)
    run(first, params, grads[:3])
    saved_params = [p.copy() for p in params]
    state = through_checkpoint(first.state_dict())
    run(first, params, grads[3:])  # the checkpoint must not alias the optimizer's arrays
    resumed = cls()  # the options, too, come from the state
    resumed.load_state_dict(state)
    assert resumed.steps == 3
    run(resumed, saved_params, grads[3:])
    for a, b, c in zip(uninterrupted, saved_params, params):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("cls, options", CASES, ids=CASE_IDS)
def test_state_dict_layout(cls, options):
    optimizer = cls(**options)
    before = optimizer.state_dict()
    assert before["type"] == cls.__name__ and before["arrays"] == {}
    assert before["config"]["steps"] == 0 and "lr" in before["config"]
    json.dumps(before)
    params, grads = problem(steps=2)
    run(optimizer, params, grads)
    state = optimizer.state_dict()
    assert set(state) == {"type", "config", "arrays"}
    assert state["config"] == json.loads(json.dumps(state["config"]))
    assert state["config"]["steps"] == 2
    names = {SGD: {"momentum_buffer"} if options.get("momentum") else set(),
             Adam: {"exp_avg", "exp_avg_sq"}, AdamW: {"exp_avg", "exp_avg_sq"},
             RMSprop: {"square_avg"} | ({"grad_avg"} if options.get("centered") else set())
             | ({"momentum_buffer"} if options.get("momentum") else set())}[cls]
    assert set(state["arrays"]) == {f"{i}.{name}" for i in range(2) for name in names}
    for key, array in state["arrays"].items():
        assert array.shape == params[int(key[0])].shape
        array += 1  # a copy: the optimizer must not change
    assert all(not np.array_equal(a, b) for a, b in
               zip(state["arrays"].values(), optimizer.state_dict()["arrays"].values()))


def test_a_fresh_state_loads_and_options_are_restored():
    optimizer = RMSprop()
    optimizer.load_state_dict(RMSprop(0.5, alpha=0.5, momentum=0.3, centered=True).state_dict())
    assert (optimizer.lr, optimizer.alpha, optimizer.momentum, optimizer.centered) == \
        (0.5, 0.5, 0.3, True)
    assert optimizer.steps == 0
    adam = Adam()
    adam.load_state_dict(through_checkpoint(Adam(betas=(0.5, 0.6)).state_dict()))
    assert adam.betas == (0.5, 0.6)


def test_loaded_arrays_are_copied():
    params, grads = problem(steps=1)
    optimizer = Adam()
    run(optimizer, params, grads)
    state = optimizer.state_dict()
    resumed = Adam()
    resumed.load_state_dict(state)
    run(resumed, params, grads)
    np.testing.assert_array_equal(state["arrays"]["0.exp_avg"],
                                  optimizer.state_dict()["arrays"]["0.exp_avg"])


def adam_state(path=None, value=None):
    """A two-step Adam state, with the entry at ``path`` ("arrays", "config.lr",
    "arrays.0.exp_avg", ...) set to ``value``, or deleted for KeyError."""
    params, grads = problem(steps=2)
    optimizer = Adam()
    run(optimizer, params, grads)
    state = optimizer.state_dict()
    if path is not None:
        section, _, key = path.partition(".")
        target, key = (state[section], key) if key else (state, section)
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
    return state


@pytest.mark.parametrize("state, message", [
    (SGD(0.1).state_dict(), "state is for 'SGD', not 'Adam'"),
    (AdamW().state_dict(), "state is for 'AdamW', not 'Adam'"),
    (adam_state("arrays", KeyError), "state is missing 'arrays'"),
    (adam_state("extra", 1), "state has unexpected keys 'extra'"),
    (adam_state("config", []), "config must be a dict"),
    (adam_state("config.lr", KeyError), "config is missing 'lr'"),
    (adam_state("config.steps", KeyError), "config is missing 'steps'"),
    (adam_state("config.momentum", 0.9), "config has unexpected keys 'momentum'"),
    (adam_state("config.lr", float("nan")), "lr must be a finite number >= 0"),
    (adam_state("config.lr", -0.1), "lr must be a finite number >= 0"),
    (adam_state("config.lr", "0.1"), "lr must be a real number"),
    (adam_state("config.eps", float("inf")), "eps must be a finite number >= 0"),
    (adam_state("config.betas", [0.9]), "betas must be a pair"),
    (adam_state("config.betas", [0.9, 1.5]), r"betas\[1\] must lie in \[0, 1\)"),
    (adam_state("config.steps", -1), "steps must be an integer >= 0"),
    (adam_state("config.steps", 2.0), "steps must be an integer >= 0"),
    (adam_state("config.steps", 0), "arrays has unexpected keys '0.exp_avg'"),
    (adam_state("arrays.1.exp_avg_sq", KeyError), "arrays is missing '1.exp_avg_sq'"),
    (adam_state("arrays.0.momentum_buffer", np.zeros(5)), "arrays has unexpected keys"),
    (adam_state("arrays", []), "arrays must be a dict"),
    (adam_state("arrays.0.exp_avg", np.zeros((3, 4), np.int64)),
     r"arrays\['0.exp_avg'\] must be a float32 or float64 ndarray, got dtype int64"),
    (adam_state("arrays.0.exp_avg", [[0.0] * 4] * 3),
     r"arrays\['0.exp_avg'\] must be a float32 or float64 ndarray, got list"),
])
def test_load_state_dict_errors(state, message):
    optimizer = Adam(0.5)
    before = optimizer.state_dict()
    with pytest.raises(ValueError, match="^Adam.load_state_dict: " + message):
        optimizer.load_state_dict(state)
    assert optimizer.state_dict() == before  # nothing changed


def test_load_state_dict_rejects_a_non_dict_and_bad_flags():
    with pytest.raises(TypeError, match="SGD.load_state_dict: state must be a dict, got list"):
        SGD().load_state_dict([])
    state = SGD(0.1, momentum=0.9, nesterov=True).state_dict()
    state["config"]["nesterov"] = "false"
    with pytest.raises(ValueError, match="SGD.load_state_dict: nesterov must be True or False"):
        SGD().load_state_dict(state)
    state["config"]["nesterov"] = True
    state["config"]["momentum"] = 0
    with pytest.raises(ValueError, match="SGD.load_state_dict: nesterov needs a momentum"):
        SGD().load_state_dict(state)


@pytest.mark.parametrize("params, message", [
    ([np.zeros((4, 3)), np.zeros(5)],
     r"Adam.step: the loaded state '0.exp_avg' has shape \(3, 4\) and dtype float64, but "
     r"parameter 0 has shape \(4, 3\) and dtype float64"),
    ([np.zeros((3, 4)), np.zeros(5, np.float32)],
     r"Adam.step: the loaded state '1.exp_avg' has shape \(5,\) and dtype float64, but "
     r"parameter 1 has shape \(5,\) and dtype float32"),
    ([np.zeros((3, 4))], "Adam.step: got 1 parameters, but the optimizer's state is for 2"),
])
def test_loaded_state_is_checked_against_the_parameters(params, message):
    optimizer = Adam()
    optimizer.load_state_dict(adam_state())
    with pytest.raises(ValueError, match=message):
        optimizer.step([(p, np.ones_like(p)) for p in params])
    assert all(not p.any() for p in params)  # refused before any update
    assert optimizer.steps == 2


# -- schedulers ---------------------------------------------------------------------------------

def lrs(scheduler, optimizer, count):
    """The learning rate the optimizer has at each of ``count`` steps."""
    seen = []
    for _ in range(count):
        seen.append(optimizer.lr)
        scheduler.step()
    return seen


def torch_lrs(make_scheduler, lr, count):
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(torch.optim.lr_scheduler, optimizer)
    seen = [optimizer.param_groups[0]["lr"]]
    while len(seen) < count:
        optimizer.step()  # torch warns about a scheduler stepped before its optimizer
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    return seen


def test_step_lr_formula_and_torch():
    scheduler, optimizer = StepLR(3, gamma=0.5), SGD(0.1)
    assert scheduler.interval == "epoch"
    scheduler.attach(optimizer)
    assert scheduler.base_lr == 0.1
    ours = lrs(scheduler, optimizer, 12)
    assert ours == [0.1 * 0.5 ** (epoch // 3) for epoch in range(12)]
    assert [scheduler.lr_at(epoch) for epoch in range(12)] == ours
    theirs = torch_lrs(lambda lr_scheduler, opt: lr_scheduler.StepLR(opt, 3, gamma=0.5), 0.1, 12)
    assert ours == pytest.approx(theirs, rel=1e-14)


def test_cosine_annealing_without_warmup_is_torchs():
    scheduler, optimizer = CosineAnnealing(4, min_lr=0.01), SGD(0.1)
    scheduler.attach(optimizer)
    ours = lrs(scheduler, optimizer, 7)
    # CosineAnnealingLR's closed form, exactly; constant after ``total``.
    closed = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(5)]
    assert ours == closed + [0.01, 0.01]
    assert ours[:5] == pytest.approx([0.1, 0.0868198, 0.055, 0.0231802, 0.01], rel=1e-6)
    theirs = torch_lrs(lambda lr_scheduler, opt: lr_scheduler.CosineAnnealingLR(
        opt, T_max=10, eta_min=0.001), 0.2, 11)
    scheduler, optimizer = CosineAnnealing(10, min_lr=0.001), SGD(0.2)
    scheduler.attach(optimizer)
    assert lrs(scheduler, optimizer, 11) == pytest.approx(theirs, rel=1e-13)


def test_cosine_annealing_with_warmup():
    scheduler = CosineAnnealing(10, warmup=3, min_lr=0.0)
    scheduler.attach(SGD(0.8))
    assert [scheduler.lr_at(s) for s in range(4)] == [0.2, 0.4, 0.6000000000000001, 0.8]
    for s in range(3, 11):
        assert scheduler.lr_at(s) == 0.8 * (1 + math.cos(math.pi * (s - 3) / 7)) / 2
    assert scheduler.lr_at(10) == 0.0 and scheduler.lr_at(25) == 0.0
    assert all(np.diff([scheduler.lr_at(s) for s in range(3, 11)]) < 0)


def one_cycle_reference(step, max_lr, total, pct_start, div_factor, final_div_factor):
    """OneCycleLR's two phases, from its documentation."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    peak = pct_start * total - 1
    cos = lambda start, end, pct: end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)
    if step <= peak:
        return cos(initial, max_lr, step / peak)
    return cos(max_lr, final, (step - peak) / (total - 1 - peak))


@pytest.mark.parametrize("max_lr, total, pct_start, div_factor, final_div_factor", [
    (0.1, 100, 0.3, 25.0, 1e4),
    (1.0, 17, 0.25, 10.0, 100.0),
    (0.05, 9, 0.5, 4.0, 1e3),
    (0.3, 7, 0.0, 25.0, 1e4),
    (0.3, 7, 1.0, 25.0, 1e4),
])
def test_one_cycle_formula_and_torch(max_lr, total, pct_start, div_factor, final_div_factor):
    options = dict(pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor)
    scheduler, optimizer = OneCycle(max_lr, total, **options), Adam(123.0)
    assert scheduler.interval == "batch"
    scheduler.attach(optimizer)
    assert scheduler.base_lr == 123.0
    ours = lrs(scheduler, optimizer, total)
    assert ours == [one_cycle_reference(s, max_lr, total, **options) for s in range(total)]
    if pct_start * total > 1:
        assert ours[0] == pytest.approx(max_lr / div_factor, rel=1e-14)
    assert max(ours) == pytest.approx(max_lr, rel=0.05)
    assert scheduler.lr_at(total + 5) == ours[-1]  # held after the cycle
    theirs = torch_lrs(lambda lr_scheduler, opt: lr_scheduler.OneCycleLR(
        opt, max_lr, total_steps=total, anneal_strategy="cos", three_phase=False,
        cycle_momentum=False, **options), 0.5, total)
    assert ours == theirs


def test_one_cycle_peak_at_step_zero():
    # pct_start * total == 1: the rise ends at step 0, where torch divides 0 by 0.
    scheduler = OneCycle(0.4, 10, pct_start=0.1)
    assert scheduler.lr_at(0) == 0.4
    assert scheduler.lr_at(9) == 0.4 / 25 / 1e4


@pytest.mark.parametrize("make", [lambda: StepLR(2, 0.5), lambda: CosineAnnealing(8, 2, 0.01),
                                  lambda: OneCycle(0.5, 12)])
@pytest.mark.parametrize("load_first", [False, True])
def test_scheduler_resume_is_exact(make, load_first):
    scheduler, optimizer = make(), SGD(0.2)
    scheduler.attach(optimizer)
    uninterrupted = lrs(scheduler, optimizer, 12)
    scheduler, optimizer = make(), SGD(0.2)
    scheduler.attach(optimizer)
    head = lrs(scheduler, optimizer, 5)
    state = json.loads(json.dumps(scheduler.state_dict()))
    assert state == {"type": type(scheduler).__name__, "steps": 5, "base_lr": 0.2}
    # The resumed optimizer's lr is whatever the checkpoint had, not the base.
    resumed, optimizer = make(), SGD(optimizer.lr)
    if load_first:
        resumed.load_state_dict(state)
        resumed.attach(optimizer)
    else:
        resumed.attach(optimizer)
        resumed.load_state_dict(state)
    assert resumed.base_lr == 0.2 and resumed.steps == 5
    assert head + lrs(resumed, optimizer, 7) == uninterrupted


def test_training_resumes_bit_exactly_with_optimizer_and_scheduler():
    params, grads = problem(np.float32, steps=10, seed=3)

    def train(optimizer, scheduler, params, grads):
        for step in grads:
            optimizer.step(list(zip(params, step)))
            scheduler.step()

    straight = [p.copy() for p in params]
    optimizer, scheduler = AdamW(0.01), OneCycle(0.05, 10)
    scheduler.attach(optimizer)
    train(optimizer, scheduler, straight, grads)

    optimizer, scheduler = AdamW(0.01), OneCycle(0.05, 10)
    scheduler.attach(optimizer)
    train(optimizer, scheduler, params, grads[:4])
    checkpoint = (through_checkpoint(optimizer.state_dict()),
                  json.loads(json.dumps(scheduler.state_dict())), [p.copy() for p in params])
    optimizer, scheduler = AdamW(), OneCycle(0.05, 10)
    optimizer.load_state_dict(checkpoint[0])
    scheduler.load_state_dict(checkpoint[1])
    scheduler.attach(optimizer)
    train(optimizer, scheduler, checkpoint[2], grads[4:])
    for a, b in zip(straight, checkpoint[2]):
        np.testing.assert_array_equal(a, b)


def test_scheduler_repr_round_trips():
    for scheduler in (StepLR(3), CosineAnnealing(10, warmup=2, min_lr=1e-4),
                      OneCycle(0.1, 100, pct_start=0.25)):
        assert repr(scheduler) == repr(eval(repr(scheduler), vars(cnnative.optim)))
    assert repr(StepLR(3)) == "StepLR(step_size=3, gamma=0.1)"


@pytest.mark.parametrize("call, error, message", [
    (lambda: StepLR(0), ValueError, "StepLR: step_size must be a positive integer"),
    (lambda: StepLR(1.5), TypeError, "StepLR: step_size must be a positive integer"),
    (lambda: StepLR(2, gamma=-1), ValueError, "StepLR: gamma must be a finite number >= 0"),
    (lambda: CosineAnnealing(0), ValueError, "CosineAnnealing: total must be a positive"),
    (lambda: CosineAnnealing(5, warmup=5), ValueError,
     "CosineAnnealing: warmup must be less than total"),
    (lambda: CosineAnnealing(5, warmup=-1), ValueError, "CosineAnnealing: warmup must be an"),
    (lambda: CosineAnnealing(5, min_lr=float("nan")), ValueError,
     "CosineAnnealing: min_lr must be a finite number"),
    (lambda: OneCycle(max_lr=-1, total=10), ValueError,
     "OneCycle: max_lr must be a finite number >= 0"),
    (lambda: OneCycle(0.1, total=0), ValueError, "OneCycle: total must be a positive integer"),
    (lambda: OneCycle(0.1, 10, pct_start=1.5), ValueError,
     r"OneCycle: pct_start must lie in \[0, 1\]"),
    (lambda: OneCycle(0.1, 10, div_factor=0), ValueError,
     "OneCycle: div_factor must be a finite number > 0"),
    (lambda: OneCycle(0.1, 10, final_div_factor=-1.0), ValueError,
     "OneCycle: final_div_factor must be a finite number > 0"),
    (lambda: StepLR(2).attach("sgd"), TypeError, "StepLR.attach: optimizer must be an Optimizer"),
    (lambda: StepLR(2).step(), RuntimeError, r"StepLR.step: call attach\(optimizer\) first"),
    (lambda: StepLR(2).lr_at(3), RuntimeError, "StepLR.lr_at: base_lr is unknown until attach"),
    (lambda: OneCycle(0.1, 10).lr_at(-1), ValueError, "OneCycle.lr_at: step must be an integer"),
    (lambda: OneCycle(0.1, 10).lr_at(1.0), TypeError, "OneCycle.lr_at: step must be an integer"),
])
def test_scheduler_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("state, message", [
    ([], "state must be a dict"),
    ({"type": "OneCycle", "steps": 1, "base_lr": 0.1}, "state is for 'OneCycle', not 'StepLR'"),
    ({"type": "StepLR", "steps": 1}, "state is missing 'base_lr'"),
    ({"type": "StepLR", "steps": 1, "base_lr": 0.1, "gamma": 2},
     "state has unexpected keys 'gamma'"),
    ({"type": "StepLR", "steps": -1, "base_lr": 0.1}, "steps must be an integer >= 0"),
    ({"type": "StepLR", "steps": "1", "base_lr": 0.1}, "steps must be an integer >= 0"),
    ({"type": "StepLR", "steps": 1, "base_lr": float("inf")}, "base_lr must be a finite"),
    ({"type": "StepLR", "steps": 1, "base_lr": None}, "base_lr is None after 1 steps"),
])
def test_scheduler_load_state_dict_errors(state, message):
    scheduler = StepLR(2)
    error = TypeError if isinstance(state, list) else ValueError
    with pytest.raises(error, match="^StepLR.load_state_dict: " + message):
        scheduler.load_state_dict(state)
    assert scheduler.state_dict() == {"type": "StepLR", "steps": 0, "base_lr": None}


def test_public_names():
    assert set(cnnative.optim.__all__) == {"Optimizer", "SGD", "Adam", "AdamW", "RMSprop",
                                           "Scheduler", "StepLR", "CosineAnnealing", "OneCycle"}
    assert not hasattr(cnnative.optim, "cosine_schedule")
    assert all(issubclass(cls, Optimizer) for cls in (SGD, Adam, AdamW, RMSprop))
