"""Semantic-unit tokenizers: features + k-means + de-duplication (+ prosody), as in GSLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechlm.tokenizers.base import Tokenizer
from speechlm.tokenizers.dedup import deduplicate
from speechlm.tokenizers.features import single_thread
from speechlm.tokenizers.frontends import Frontend, build_frontend
from speechlm.tokenizers.kmeans import KMeansQuantizer, smooth_path
from speechlm.tokenizers.streams import Streams

QUANTIZER_FILE = "quantizer.safetensors"


class UnitTokenizer(Tokenizer):
    """Frames -> nearest k-means centroid -> (optionally) run-length de-duplicated units.

    With ``switch_penalty > 0`` the frame units are the Viterbi path of ``smooth_path`` (a cost
    per change of unit, in squared feature distance) instead of the frame-wise nearest centroid.
    """

    def __init__(self, frontend: Frontend, quantizer: KMeansQuantizer, dedup: bool = True,
                 prosody=None, switch_penalty: float = 0.0) -> None:
        self.frontend = frontend
        self.quantizer = quantizer
        self.dedup = dedup
        self.prosody = prosody  # speechlm.tokenizers.prosody.Prosody or None
        self.switch_penalty = float(switch_penalty)
        self.kind = frontend.kind
        self.n_units = quantizer.n_units
        self.frame_rate = frontend.frame_rate
        self.sample_rate = frontend.sample_rate

    def encode(self, waveforms: list[np.ndarray], sample_rate: int,
               speakers: list[str | None] | None = None) -> list[Streams]:
        wavs = self.resample(waveforms, sample_rate)
        feats = self.frontend(wavs)
        return self.quantize(wavs, feats, speakers)

    @torch.inference_mode()
    def quantize(self, wavs: list[np.ndarray], feats: list[torch.Tensor],
                 speakers: list[str | None] | None = None) -> list[Streams]:
        """Streams from already-computed features (all on one device).

        All frames of the batch are assigned in one matmul and copied back once: on a GPU,
        per-utterance launches and synchronisations would cost more than the assignment.
        """
        if not feats:
            return []
        with single_thread():  # small CPU matmuls: see features.single_thread
            x, lengths = torch.cat(feats), [len(f) for f in feats]
            if self.switch_penalty > 0:
                dist = self.quantizer.distances(x).cpu().split(lengths)  # (T_i, K) each
                frames = [torch.from_numpy(smooth_path(d.numpy(), self.switch_penalty))
                          for d in dist]
            else:
                frames = self.quantizer.assign(x).cpu().split(lengths)  # (T_i,) each
            out = []
            for i, f in enumerate(frames):
                if self.dedup:
                    units, durations = deduplicate(f)
                else:
                    units, durations = f, torch.ones_like(f)
                s = Streams(self.frame_rate, units=units.numpy(), durations=durations.numpy())
                if self.prosody is not None:
                    self.prosody.annotate(s, wavs[i], speakers[i] if speakers else None)
                out.append(s)
        return out

    def spec(self) -> dict:
        return {
            "class": "units", "kind": self.kind, "n_units": self.n_units,
            "frame_rate": self.frame_rate, "sample_rate": self.sample_rate, "dedup": self.dedup,
            "features": self.frontend.to_dict(), "quantizer": QUANTIZER_FILE,
            "switch_penalty": self.switch_penalty,
            "prosody": None if self.prosody is None else self.prosody.to_dict(),
        }

    def save_weights(self, out_dir: Path) -> None:
        self.quantizer.save(out_dir / QUANTIZER_FILE)
        save = getattr(self.frontend, "save_weights", None)
        if save is not None:
            save(out_dir)
        if self.prosody is not None:
            self.prosody.save_weights(out_dir)

    @classmethod
    def from_spec(cls, spec: dict, directory: Path) -> UnitTokenizer:
        frontend = build_frontend(spec["features"], directory)
        quantizer = KMeansQuantizer.load(directory / spec.get("quantizer", QUANTIZER_FILE))
        prosody = None
        if spec.get("prosody"):
            from speechlm.tokenizers.prosody import Prosody

            prosody = Prosody.from_dict(spec["prosody"], directory)
        return cls(frontend, quantizer, dedup=spec.get("dedup", True), prosody=prosody,
                   switch_penalty=spec.get("switch_penalty", 0.0))
