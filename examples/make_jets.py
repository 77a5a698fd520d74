"""Synthetic jet events with the 42 inputs of the talk's model (``make_seed_model.KEYS``).

Used by the example notebooks (``quickstart.ipynb``, ``from-root.ipynb``). An event has
``nJets`` jets (1 to 8), ``nLeptons`` and a ``label`` (1: signal, 0: background); each
jet has the eight variables of the seed model (``jetEta``, ``jetMass``,
``jetMassSoftDrop``, ``jetPhi``, ``jetPt``, ``jetTau1``, ``jetTau2``, ``jetTau3``) as
jagged arrays, one entry per jet, as an ntuple holds them. Signal jets are harder, heavier
(a top-like mass peak) and more three-pronged (smaller ``jetTau3/jetTau2``) than the
background's, with enough overlap that a classifier's scores spread over (0, 1).

:func:`features` turns such events (a dict, or the awkward array read from a ROOT tree)
into the model's input matrix: ``nJets``, ``nLeptons``, then the first 5 jets of each
variable, zero padded, in the order of ``KEYS``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from make_seed_model import KEYS

#: The jet variables, in the order of KEYS (jetEta_0..4, jetMass_0..4, ...).
JET_VARIABLES = list(dict.fromkeys(key.rsplit("_", 1)[0] for key in KEYS[2:]))
#: Jets per event the model sees (the rest are dropped, missing ones are zeros).
JETS_IN_MODEL = 5


def jet_events(n: int, seed: int = 0) -> dict[str, Any]:
    """``n`` events: ``nJets``, ``nLeptons``, ``label`` (numpy int32) and one awkward
    jagged array per jet variable (``jetPt[event][jet]``, float32)."""
    import awkward as ak

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n).astype(np.int32)
    n_jets = np.clip(rng.poisson(1.5 + label), 1, 8).astype(np.int32)
    n_leptons = rng.binomial(2, np.where(label == 1, 0.4, 0.2)).astype(np.int32)
    signal = np.repeat(label, n_jets) == 1
    size = int(n_jets.sum())
    pt = 30 + rng.exponential(np.where(signal, 220.0, 120.0))
    mass = np.abs(np.where(signal, rng.normal(150.0, 45.0, size),
                           rng.exponential(60.0, size)))
    tau1 = rng.uniform(0.15, 0.5, size)
    tau2 = tau1 * rng.uniform(0.3, 0.9, size)
    tau3 = tau2 * np.where(signal, rng.uniform(0.35, 0.85, size), rng.uniform(0.55, 0.95, size))
    per_jet = {
        "jetEta": rng.normal(0.0, np.where(signal, 1.1, 1.6)),
        "jetMass": mass,
        "jetMassSoftDrop": mass * rng.uniform(0.75, 1.0, size),
        "jetPhi": rng.uniform(-np.pi, np.pi, size),
        "jetPt": pt,
        "jetTau1": tau1,
        "jetTau2": tau2,
        "jetTau3": tau3,
    }
    events: dict[str, Any] = {"nJets": n_jets, "nLeptons": n_leptons, "label": label}
    for name in JET_VARIABLES:
        events[name] = ak.unflatten(per_jet[name].astype(np.float32), n_jets)
    return events


def features(events: Mapping[str, Any] | Any) -> np.ndarray:
    """The model's inputs, shape ``(events, 42)`` float32, columns in ``KEYS`` order."""
    import awkward as ak

    columns = [np.asarray(events["nJets"], np.float32),
               np.asarray(events["nLeptons"], np.float32)]
    for name in JET_VARIABLES:
        padded = ak.fill_none(ak.pad_none(events[name], JETS_IN_MODEL, clip=True), 0.0)
        columns.extend(ak.to_numpy(padded).astype(np.float32).T)
    matrix = np.column_stack(columns)
    assert matrix.shape[1] == len(KEYS)
    return matrix
