"""MNIST-1D (Greydanus, 2020) as a search space of real trainings: every candidate is a network written in MAD's IR,
rebuilt as a runnable module by the fx exporter (:func:`gnn.exporters.fx.to_graph_module`) and trained on this
machine's CPU for a fixed budget; its validation accuracy is the score.

The data: 5,000 one-dimensional signals of length 40 (10 digit templates, padded, shifted, sheared, noised),
generated locally by the PyPI package ``mnist1d``'s ``make_dataset`` (its ``get_dataset`` downloads: never
called); its 4,000 training signals are split 3,500 for training and 500 for validation (selection), its 1,000
test signals only report.  Published test accuracies: logistic regression 32%, MLP 68%, the paper's CNN 94%,
GRU 91%, human 96%.

A candidate (:class:`Net`) is a stack of 1-D convolutions (channels, kernel, stride; "same" padding), then the
features flattened or pooled over the length, hidden linear layers, one activation throughout, and the
classifier.  The seed is a plain MLP (40 -> 100 -> 10).  The space holds every such network with at most
:data:`LIMIT` parameters, the paper's CNN's count (5,210): a candidate over it is refused before it costs a
training.  The moves (:meth:`Net.neighbours`) are edits of the network: insert or remove a convolution or a
hidden layer, change a convolution's channels, kernel or stride, a layer's width, the activation, the pooling.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from gnn.errors import MadError

LENGTH, CLASSES = 40, 10
LIMIT = 5210  # parameters of the paper's CNN (3 convolutions of 25 channels, a linear classifier): the budget
ACTS = ("relu", "gelu", "silu", "tanh")
CHANNELS = (8, 12, 16, 24, 32, 48)
KERNELS = (3, 5, 7, 9)
STRIDES = (1, 2)
WIDTHS = (16, 32, 64, 100, 128)
POOLS = ("flatten", "mean", "max")
MAX_CONVS, MAX_HIDDEN = 4, 2

# the training budget, equal for every candidate and every strategy
STEPS, BATCH, LR = 2000, 100, 1e-2


@dataclass(frozen=True)
class Net:
    """One network: ``convs`` of (channels, kernel, stride), ``pool`` (how the convolutions' features reach the
    head: ``flatten``, ``mean`` or ``max`` over the length), ``hidden`` widths, ``act``."""

    convs: tuple[tuple[int, int, int], ...] = ()
    hidden: tuple[int, ...] = (100,)
    act: str = "relu"
    pool: str = "flatten"

    def __post_init__(self):
        if not self.convs and self.pool != "flatten":  # without convolutions there is nothing to pool
            object.__setattr__(self, "pool", "flatten")

    def __str__(self) -> str:
        convs = " ".join(f"conv{c}k{k}s{s}" for c, k, s in self.convs)
        head = " ".join(f"fc{w}" for w in self.hidden)
        return " ".join(x for x in (convs, self.pool if self.convs else "", head, self.act) if x)

    @classmethod
    def parse(cls, text: str) -> "Net":
        """The network :meth:`__str__` wrote (the search's key)."""
        convs, hidden, act, pool = [], [], None, "flatten"
        for word in text.split():
            if word.startswith("conv"):
                c, rest = word[4:].split("k")
                k, s = rest.split("s")
                convs.append((int(c), int(k), int(s)))
            elif word.startswith("fc"):
                hidden.append(int(word[2:]))
            elif word in POOLS:
                pool = word
            elif word in ACTS:
                act = word
            else:
                raise MadError(f"not an MNIST-1D network: `{text}` (unknown part `{word}`)")
        if act is None:
            raise MadError(f"not an MNIST-1D network: `{text}` (no activation)")
        return cls(tuple(convs), tuple(hidden), act, pool)

    def lengths(self) -> list[int]:
        """The signal's length after each convolution ("same" padding: only the stride shortens it)."""
        out, n = [], LENGTH
        for _, _, s in self.convs:
            n = (n - 1) // s + 1
            out.append(n)
        return out

    def size(self) -> int:
        """Parameters (weights and biases)."""
        total, cin = 0, 1
        for c, k, _ in self.convs:
            total += cin * c * k + c
            cin = c
        d = (cin * self.lengths()[-1] if self.pool == "flatten" else cin) if self.convs else LENGTH
        for w in (*self.hidden, CLASSES):
            total += d * w + w
            d = w
        return total

    def problem(self) -> str | None:
        """Why this network is not in the space (None if it is)."""
        if len(self.convs) > MAX_CONVS or len(self.hidden) > MAX_HIDDEN:
            return f"at most {MAX_CONVS} convolutions and {MAX_HIDDEN} hidden layers"
        if self.act not in ACTS or self.pool not in POOLS:
            return f"activations are {', '.join(ACTS)}; pooling is {', '.join(POOLS)}"
        if any(c not in CHANNELS or k not in KERNELS or s not in STRIDES for c, k, s in self.convs) or any(
                w not in WIDTHS for w in self.hidden):
            return "a convolution's channels, kernel or stride, or a layer's width, is not one of the space's"
        if self.size() > LIMIT:
            return f"{self.size():,} parameters, over the budget of {LIMIT:,} (the paper's CNN)"
        return None

    def neighbours(self) -> list["Net"]:
        """The networks one edit away that are in the space (the moves of mutation and of the agent)."""
        out = []
        convs, hidden = list(self.convs), list(self.hidden)
        for i in range(len(convs) + 1):  # insert a convolution
            for c in CHANNELS:
                for k in KERNELS:
                    for s in STRIDES:
                        out.append(replace(self, convs=tuple(convs[:i] + [(c, k, s)] + convs[i:])))
        for i, (c, k, s) in enumerate(convs):
            out.append(replace(self, convs=tuple(convs[:i] + convs[i + 1:])))  # remove it
            out += [replace(self, convs=tuple(convs[:i] + [x] + convs[i + 1:]))
                    for x in [(c2, k, s) for c2 in CHANNELS if c2 != c] + [(c, k2, s) for k2 in KERNELS if k2 != k]
                    + [(c, k, s2) for s2 in STRIDES if s2 != s]]
        for i in range(len(hidden) + 1):
            out += [replace(self, hidden=tuple(hidden[:i] + [w] + hidden[i:])) for w in WIDTHS]
        for i, w in enumerate(hidden):
            out.append(replace(self, hidden=tuple(hidden[:i] + hidden[i + 1:])))
            out += [replace(self, hidden=tuple(hidden[:i] + [w2] + hidden[i + 1:])) for w2 in WIDTHS if w2 != w]
        out += [replace(self, act=a) for a in ACTS if a != self.act]
        if self.convs:
            out += [replace(self, pool=p) for p in POOLS if p != self.pool]
        seen, unique = {str(self)}, []
        for n in map(Net.fitted, out):
            if str(n) not in seen and n.problem() is None:
                seen.add(str(n))
                unique.append(n)
        return unique

    def fitted(self) -> "Net":
        """This network, or where it is over the budget the nearest that is not: the convolutions' features
        pooled over the length instead of flattened, then the widest hidden layer narrowed, step by step (so that
        inserting a convolution into a network near the budget is one edit, not three)."""
        net = self
        if net.size() > LIMIT and net.convs and net.pool == "flatten":
            net = replace(net, pool="mean")
        while net.size() > LIMIT and net.hidden:
            i = max(range(len(net.hidden)), key=lambda j: net.hidden[j])
            w = WIDTHS.index(net.hidden[i]) if net.hidden[i] in WIDTHS else 0
            if w == 0:
                break
            net = replace(net, hidden=net.hidden[:i] + (WIDTHS[w - 1],) + net.hidden[i + 1:])
        return net

    def module(self) -> nn.Module:
        return ConvNet(self)


SEED = Net()  # the plain MLP the agent starts from: 40 -> 100 -> 10, ReLU (5,110 parameters)


class ConvNet(nn.Module):
    """A :class:`Net` as a PyTorch module (input: a batch of signals, ``(batch, 40)``)."""

    def __init__(self, net: Net):
        super().__init__()
        self.net = net
        cin, layers = 1, []
        for c, k, s in net.convs:
            layers.append(nn.Conv1d(cin, c, k, stride=s, padding=k // 2))
            cin = c
        self.convs = nn.ModuleList(layers)
        d = (cin * net.lengths()[-1] if net.pool == "flatten" else cin) if net.convs else LENGTH
        self.hidden = nn.ModuleList()
        for w in net.hidden:
            self.hidden.append(nn.Linear(d, w))
            d = w
        self.classifier = nn.Linear(d, CLASSES)

    def forward(self, x):
        act = getattr(torch.nn.functional, self.net.act)
        h = x
        if self.net.convs:
            h = x.unsqueeze(1)
            for conv in self.convs:
                h = act(conv(h))
            h = h.flatten(1) if self.net.pool == "flatten" else h.mean(-1) if self.net.pool == "mean" else h.amax(-1)
        for layer in self.hidden:
            h = act(layer(h))
        return self.classifier(h)


@functools.lru_cache(maxsize=1)
def data() -> dict[str, torch.Tensor]:
    """MNIST-1D, generated here (``make_dataset`` with the package's default arguments: seed 42): ``x``/``y``
    (3,500 training signals), ``x_val``/``y_val`` (500), ``x_test``/``y_test`` (1,000)."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset seeds numpy's global generator; leave the caller's as it was
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    x, y = torch.tensor(d["x"], dtype=torch.float32), torch.tensor(d["y"], dtype=torch.long)
    return {"x": x[:3500], "y": y[:3500], "x_val": x[3500:], "y_val": y[3500:],
            "x_test": torch.tensor(d["x_test"], dtype=torch.float32), "y_test": torch.tensor(d["y_test"])}


def to_graph(net: Net, batch: int = BATCH):
    """``net`` in MAD's IR, traced on a batch of ``batch`` signals (the shapes it trains on)."""
    import warnings

    from gnn.importers.torch_module import import_module

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # the caller's random state untouched
        torch.manual_seed(0)
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation notices, once per trace
        return import_module(net.module(), (torch.zeros(batch, LENGTH),), name="mnist1d")


def train(net: Net, seed: int = 0, steps: int = STEPS) -> dict:
    """Train ``net`` from the IR: the graph rebuilt by the fx exporter with the module's initial weights, Adam
    (lr 1e-2, cosine to 0) on batches of 100 for ``steps`` steps; accuracies on validation and test."""
    import time

    from gnn.exporters.fx import to_graph_module

    torch.set_num_threads(1)
    start = time.perf_counter()
    d = data()
    torch.manual_seed(seed)
    init = net.module().state_dict()  # PyTorch's own initialisation, from the seed
    graph = to_graph(net)
    model = to_graph_module(graph, weights=init)
    model.train()
    (name,) = [o.name for o in graph.outputs]
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    n = len(d["y"])
    order = torch.randperm(n, generator=gen)
    at = 0
    for _ in range(steps):
        if at + BATCH > n:
            order, at = torch.randperm(n, generator=gen), 0
        idx = order[at:at + BATCH]
        at += BATCH
        loss = torch.nn.functional.cross_entropy(model(d["x"][idx])[name], d["y"][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    @torch.no_grad()
    def accuracy(x, y):
        right = 0
        for i in range(0, len(y), BATCH):  # the traced batch size; the splits are multiples of it
            right += int((model(x[i:i + BATCH])[name].argmax(-1) == y[i:i + BATCH]).sum())
        return right / len(y)

    return {"valid": accuracy(d["x_val"], d["y_val"]), "test": accuracy(d["x_test"], d["y_test"]),
            "seconds": time.perf_counter() - start, "loss": float(loss.detach())}


def distributions() -> dict:
    """Optuna's distributions: a fixed set of categorical choices (the convolutions and layers beyond
    ``convs``/``hidden`` are unused), so Optuna's own samplers search the same space."""
    from optuna.distributions import CategoricalDistribution as C

    out = {"convs": C(list(range(MAX_CONVS + 1)))}
    for i in range(MAX_CONVS):
        out |= {f"c{i}": C(list(CHANNELS)), f"k{i}": C(list(KERNELS)), f"s{i}": C(list(STRIDES))}
    out["hidden"] = C(list(range(MAX_HIDDEN + 1)))
    out |= {f"w{i}": C(list(WIDTHS)) for i in range(MAX_HIDDEN)}
    return out | {"act": C(list(ACTS)), "pool": C(list(POOLS))}


def from_params(params: dict) -> Net:
    convs = tuple((params[f"c{i}"], params[f"k{i}"], params[f"s{i}"]) for i in range(params["convs"]))
    return Net(convs, tuple(params[f"w{i}"] for i in range(params["hidden"])), params["act"], params["pool"])


def to_params(net: Net) -> dict:
    """``net`` as Optuna parameters (unused slots: the first choice, so one network is one set of parameters)."""
    out = {"convs": len(net.convs), "hidden": len(net.hidden), "act": net.act, "pool": net.pool}
    for i in range(MAX_CONVS):
        out |= dict(zip((f"c{i}", f"k{i}", f"s{i}"), net.convs[i] if i < len(net.convs) else
                        (CHANNELS[0], KERNELS[0], STRIDES[0])))
    return out | {f"w{i}": net.hidden[i] if i < len(net.hidden) else WIDTHS[0] for i in range(MAX_HIDDEN)}


PARTS = ["convs", "hidden", "classifier"]

# how the language model writes a network (Net's own notation, the search's key)
GRAMMAR = (rf"(conv({'|'.join(map(str, CHANNELS))})k({'|'.join(map(str, KERNELS))})s({'|'.join(map(str, STRIDES))}) )"
           rf"{{0,{MAX_CONVS}}}(({'|'.join(POOLS)}) )?(fc({'|'.join(map(str, WIDTHS))}) ){{0,{MAX_HIDDEN}}}"
           rf"({'|'.join(ACTS)})")
NOTATION_TASK = (f"The task is MNIST-1D: classify 1-D signals of length {LENGTH} into {CLASSES} digits, with "
                 f"networks of at most {LIMIT:,} parameters.")
NOTATION_EXAMPLE = ("A network is written as its layers in order, e.g. `conv24k5s2 conv24k3s2 flatten fc32 relu`: a "
                    "convolution of 24 channels, kernel 5, stride 2; another of kernel 3; the features flattened "
                    "(or mean or max pooled over the length); a hidden layer of 32; one activation throughout.")


class Space:
    """MNIST-1D for the search loop (:class:`assistant.search.samplers.Space`): a candidate is
    :func:`to_params` of a :class:`Net`; evaluating it trains it (:func:`train`).  The agent starts from the
    seed MLP and ranks a sample of each pool (reading a candidate means tracing it)."""

    agent = {"init": 1, "rank": 32}

    def __init__(self, steps: int = STEPS):
        self.steps = steps

    def predictor(self):
        """The agent's predictor: a ridge head on :meth:`features`, refitted on every result (no prior: no
        other dataset's results to transfer from)."""
        from assistant.search.predictor import OnDemand

        return OnDemand(self.features)

    def distributions(self) -> dict:
        return distributions()

    def key(self, params: dict) -> str:
        return str(from_params(params))

    def start(self) -> dict:
        return to_params(SEED)

    def random(self, rng) -> dict:
        """A network drawn uniformly from Optuna's parameters, again until one is in the space."""
        dists = distributions()
        while True:
            net = from_params({k: rng.choice(d.choices) for k, d in dists.items()})
            if net.problem() is None:
                return to_params(net)

    def parse(self, text: str) -> dict | None:
        """A network written down (the language model's proposal), fitted to the budget; None if it is not one
        of the space's."""
        try:
            net = Net.parse(text).fitted()
        except (MadError, ValueError):
            return None
        return to_params(net) if net.problem() is None else None

    def notation(self):
        from assistant.search.proposer import Notation

        return Notation(NOTATION_TASK, GRAMMAR, NOTATION_EXAMPLE)

    def neighbours(self, params: dict) -> list[dict]:
        return [to_params(n) for n in from_params(params).neighbours()]

    def mutate(self, params: dict, rng) -> dict:
        options = from_params(params).neighbours()
        return to_params(rng.choice(options)) if options else dict(params)

    def crossover(self, a: dict, b: dict, rng) -> dict:
        na, nb = from_params(a), from_params(b)
        child = Net(na.convs if rng.random() < 0.5 else nb.convs, na.hidden if rng.random() < 0.5 else nb.hidden,
                    rng.choice([na.act, nb.act]), rng.choice([na.pool, nb.pool]))
        return to_params(child) if child.problem() is None else dict(a)

    def graph(self, params: dict):
        return to_graph(from_params(params))

    def evaluate(self, params: dict, seed: int = 0) -> dict | None:
        """Train the candidate: ``score`` (validation accuracy), ``test``, ``cost`` (seconds); None for a
        network outside the space (over the parameter budget), which costs no training."""
        net = from_params(params)
        if net.problem() is not None:
            return None
        r = train(net, seed, self.steps)
        return {"score": r["valid"], "test": r["test"], "cost": r["seconds"], "params": net.size(), "key": str(net),
                "arch": f"{net} ({net.size():,} parameters)"}

    def features(self, keys: list[str]) -> np.ndarray:
        """What the predictor reads of each network: the graph transformer's features of its graph (pooled, and
        per part: convolutions, hidden layers, classifier) and the numbers of :func:`_shape`."""
        from assistant.search import predictor

        nets = [Net.parse(k) for k in keys]
        data = predictor.tokens([to_graph(n, batch=1) for n in nets], PARTS)
        f = predictor.features(data, len(PARTS)).numpy()
        return np.concatenate([f, np.array([_shape(n) for n in nets])], 1)


def _shape(net: Net) -> list[float]:
    """The few numbers the graph's shapes say of a network, as the ridge head reads them: log parameters,
    convolutions, total stride, log channels, mean kernel, hidden layers, the activation and pooling one-hot."""
    convs = net.convs or ((1, 1, 1),)
    return [math.log(net.size()), len(net.convs), math.log2(math.prod(s for _, _, s in convs)),
            math.log(sum(c for c, _, _ in convs)), float(np.mean([k for _, k, _ in convs])), len(net.hidden),
            *[float(net.act == a) for a in ACTS], *[float(net.convs != () and net.pool == p) for p in POOLS]]
