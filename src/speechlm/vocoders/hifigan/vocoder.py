"""A trained unit HiFi-GAN as a ``Vocoder``: ``vocoder.json`` + ``weights.safetensors``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.vocoders.base import (
    WEIGHTS_NAME,
    check_units,
    read_config,
    round_durations,
    write_config,
)
from speechlm.vocoders.hifigan.config import HifiganConfig


class HifiganVocoder:
    """Generator + duration predictor; ``speakers`` names the speaker embedding rows."""

    kind = "hifigan"

    def __init__(self, generator: Any, speakers: list[str] | None = None) -> None:
        self.generator = generator.eval()
        self.cfg: HifiganConfig = generator.cfg
        self.sample_rate = self.cfg.sample_rate
        self.speakers = speakers or []

    def durations(self, units: np.ndarray) -> np.ndarray:
        """Integer frame counts predicted for de-duplicated ``units``."""
        import torch

        if len(units) == 0:
            return np.zeros(0, dtype=np.int64)
        with torch.inference_mode():
            log_d = self.generator.predict_log_durations(torch.as_tensor(units)[None])[0]
        return round_durations(np.clip(np.expm1(log_d.numpy().astype(np.float64)), 1.0, None))

    def synthesize(self, streams: Any, speaker: str | None = None) -> np.ndarray:
        """Audio of ``len(frames) * hop`` samples; durations predicted when absent."""
        import torch

        units = check_units(streams, self.cfg.n_units)
        durs = streams.durations
        durs = self.durations(units) if durs is None else np.asarray(durs, dtype=np.int64)
        if len(durs) != len(units):
            raise SpeechLMError(f"streams: {len(units)} units but {len(durs)} durations")
        frames = np.repeat(units, durs)
        if len(frames) == 0:
            return np.zeros(0, dtype=np.float32)
        f0 = None
        if self.cfg.use_f0 and getattr(streams, "f0", None) is not None:
            f0 = torch.as_tensor(np.repeat(np.asarray(streams.f0, np.int64), durs))[None]
        spk = None
        if speaker is not None and self.cfg.n_speakers:
            if speaker not in self.speakers:
                raise SpeechLMError(f"speaker '{speaker}' unknown to this vocoder; "
                                    f"known: {self.speakers}")
            spk = torch.tensor([self.speakers.index(speaker)])
        with torch.inference_mode():
            wav = self.generator(torch.as_tensor(frames)[None], f0, spk)
        return wav[0, 0].numpy().astype(np.float32)

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        d = write_config(out_dir, {"kind": self.kind, "sample_rate": self.sample_rate,
                                   "frame_rate": self.cfg.frame_rate,
                                   "n_units": self.cfg.n_units, "speakers": self.speakers,
                                   "config": self.cfg.to_dict()})
        save_file({k: v.contiguous() for k, v in self.generator.state_dict().items()},
                  str(d / WEIGHTS_NAME))
        return d

    @classmethod
    def load(cls, vocoder_dir: str | Path) -> HifiganVocoder:
        from safetensors.torch import load_file

        from speechlm.vocoders.hifigan.generator import UnitGenerator

        d = Path(vocoder_dir)
        cfg = read_config(d)
        if not (d / WEIGHTS_NAME).is_file():
            raise SpeechLMError(f"{d}: missing {WEIGHTS_NAME}; train with `speechlm vocoder train`")
        gen = UnitGenerator(HifiganConfig.from_dict(cfg["config"]))
        gen.load_state_dict(load_file(str(d / WEIGHTS_NAME)))
        return cls(gen, cfg.get("speakers"))
