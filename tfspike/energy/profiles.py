"""Energy profiles: joules per synaptic operation (an accumulate driven by a spike), per
multiply-accumulate (a synapse driven by an analog value) and per neuron state update.

Sources:

- ``45nm_fp32`` / ``45nm_fp16`` / ``45nm_int8``: M. Horowitz, "Computing's energy problem (and what we
  can do about it)", ISSCC 2014, energy per operation in 45 nm CMOS at 0.9 V: 32-bit float add 0.9 pJ,
  multiply 3.7 pJ; 16-bit float add 0.4 pJ, multiply 1.1 pJ; 8-bit int add 0.03 pJ, multiply 0.2 pJ.
  An AC is one add, a MAC one multiply plus one add. Horowitz gives no neuron figure; a neuron state
  update is counted as one MAC (the least a leaky or resonant update costs) — an assumption, stated here.
- ``cpu``, ``gpu``, ``arm`` (Intel i7-4960X, Nvidia GTX Titan Black, ARM Cortex-A; every synop and
  neuron update is one MAC): B. Degnan, B. Marr, J. Hasler, "Assessing trends in performance per watt
  for signal processing applications", IEEE TVLSI 24(1), 2015 — as tabulated by KerasSpiking's
  ``ModelEnergy``. These are not event-driven: on them a network runs as its ANN, so
  :meth:`tfspike.energy.EnergyReport.joules` charges them the ANN twin's MACs.
- ``loihi``: M. Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning",
  IEEE Micro 38(1), 2018: 23.6 pJ per synaptic spike op + 3.5 pJ per synaptic update, 81 pJ per neuron
  update (KerasSpiking's figures).
- ``spinnaker``, ``spinnaker2``: S. Höppner et al., "Dynamic power management for neuromorphic
  many-core systems", IEEE TCAS-I 66(8), 2019 (13.3 nJ / 26 nJ and 450 pJ / 2.19 nJ per synop / neuron
  update; KerasSpiking's figures).

Register your own with :func:`register_profile`.
"""

from dataclasses import dataclass

from tfspike.errors import UserError


@dataclass(frozen=True)
class EnergyProfile:
    """Joules per operation on one device.

    Args:
        name: registry name.
        synop_j: one synaptic accumulate (AC) driven by a spike.
        mac_j: one multiply-accumulate (a synapse driven by an analog value).
        neuron_update_j: one neuron state update.
        event_driven: True for devices that compute only on spikes; False for devices that run the
            network as its ANN twin (every synapse every step, as MACs).
        source: where the numbers come from.
    """

    name: str
    synop_j: float
    mac_j: float
    neuron_update_j: float
    event_driven: bool = True
    source: str = ""


PROFILES = {}


def register_profile(profile, replace=False):
    """Add ``profile`` to the registry (``replace=True`` to overwrite a name). Returns it."""
    if not isinstance(profile, EnergyProfile):
        raise UserError(f"register_profile expects an EnergyProfile, got {type(profile).__name__}")
    if profile.name in PROFILES and not replace:
        raise UserError(f"energy profile {profile.name!r} is already registered (pass replace=True)")
    PROFILES[profile.name] = profile
    return profile


def get_profile(name_or_profile):
    """An :class:`EnergyProfile` by name (or the profile itself)."""
    if isinstance(name_or_profile, EnergyProfile):
        return name_or_profile
    if name_or_profile not in PROFILES:
        raise UserError(f"unknown energy profile {name_or_profile!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name_or_profile]


_HOROWITZ = "Horowitz, ISSCC 2014 (45 nm, 0.9 V); neuron update = one MAC (assumption)"
_DEGNAN = "Degnan, Marr & Hasler, IEEE TVLSI 2015 (via KerasSpiking ModelEnergy); runs the ANN twin"
for _p in (
    EnergyProfile("45nm_fp32", 0.9e-12, (3.7 + 0.9) * 1e-12, (3.7 + 0.9) * 1e-12, True, _HOROWITZ),
    EnergyProfile("45nm_fp16", 0.4e-12, (1.1 + 0.4) * 1e-12, (1.1 + 0.4) * 1e-12, True, _HOROWITZ),
    EnergyProfile("45nm_int8", 0.03e-12, (0.2 + 0.03) * 1e-12, (0.2 + 0.03) * 1e-12, True, _HOROWITZ),
    EnergyProfile("loihi", (23.6 + 3.5) * 1e-12, (23.6 + 3.5) * 1e-12, 81e-12, True,
                  "Davies et al., IEEE Micro 2018 (via KerasSpiking ModelEnergy)"),
    EnergyProfile("spinnaker", 13.3e-9, 13.3e-9, 26e-9, True, "Höppner et al., IEEE TCAS-I 2019 (via KerasSpiking)"),
    EnergyProfile("spinnaker2", 450e-12, 450e-12, 2.19e-9, True, "Höppner et al., IEEE TCAS-I 2019 (via KerasSpiking)"),
    EnergyProfile("cpu", 8.6e-9, 8.6e-9, 8.6e-9, False, _DEGNAN),
    EnergyProfile("gpu", 0.3e-9, 0.3e-9, 0.3e-9, False, _DEGNAN),
    EnergyProfile("arm", 0.9e-9, 0.9e-9, 0.9e-9, False, _DEGNAN),
):
    register_profile(_p)
