"""The envelope vocoder: predicted envelopes, F0 and voicing, voiced by ``dsp.source_filter``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.vocoders import dsp
from speechlm.vocoders.base import WEIGHTS_NAME, check_units, read_config, write_config
from speechlm.vocoders.envelope.model import EnvelopeConfig, EnvelopeNet, cepstrum_basis
from speechlm.vocoders.fallback import FallbackVocoder

DURATIONS_DIR = "durations"


class EnvelopeVocoder:
    """``EnvelopeNet`` + the fallback's duration tables (for de-duplicated units)."""

    kind = "envelope"

    def __init__(self, net: EnvelopeNet, durations: FallbackVocoder | str | Path) -> None:
        import torch

        self.net = net.eval()
        self.cfg: EnvelopeConfig = net.cfg
        self.sample_rate = int(self.cfg.sample_rate)
        self.durations = (durations if isinstance(durations, FallbackVocoder)
                          else FallbackVocoder.load(durations))
        self._basis = cepstrum_basis(dsp.N_FFT // 2 + 1).to(torch.float64)

    def voice_of(self, wav: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """The d-vector to speak ``wav``'s voice with (None: not conditioned on voices, or no
        speech left after silence trimming, so the training voices' mean is used)."""
        from speechlm.errors import AudioError
        from speechlm.speaker import voice_embedding

        if not self.cfg.voice:
            return None
        try:
            return voice_embedding(wav, "voice reference", sample_rate, min_seconds=0)
        except AudioError:
            return None

    def synthesize(self, streams: Any, seed: int = 0, voice: np.ndarray | None = None
                   ) -> np.ndarray:
        """Audio (float32, ``sample_rate``); durations predicted when ``streams.durations`` is
        None, the tokens' F0 bins used when the network was trained with them, in the voice of
        the d-vector ``voice`` (see ``voice_of``; default: the training voices' mean)."""
        import torch

        from speechlm.vocoders.envelope.model import position_features

        units = check_units(streams, self.cfg.n_units)
        durs = getattr(streams, "durations", None)
        durs = (self.durations.predict_durations(units) if durs is None
                else np.asarray(durs, dtype=np.int64))
        if durs.shape != units.shape:
            raise SpeechLMError(f"streams: {len(units)} units but {len(durs)} durations")
        n = int(durs.sum())
        if n == 0:
            return np.zeros(0, np.float32)
        bins = getattr(streams, "f0", None)
        f0_bins = None
        if self.cfg.n_f0_bins and bins is not None and len(bins) == len(units):
            f0_bins = torch.as_tensor(np.repeat(np.asarray(bins, np.int64), durs))[None]
        with torch.inference_mode():
            v = None if voice is None else torch.as_tensor(voice, dtype=torch.float32)[None]
            y = self.net(torch.as_tensor(np.repeat(units, durs))[None],
                         torch.from_numpy(position_features(durs))[None], f0_bins, v)
            cep, f0, voicing = (t[0].double() for t in self.net.decode(y))
            log_env = (cep @ self._basis).numpy()
        n_samples = int(round(n * self.sample_rate / self.cfg.frame_rate))
        wav = dsp.source_filter(log_env, f0.numpy(), voicing.numpy(), self.cfg.frame_rate,
                                self.sample_rate, n_samples, seed)
        return dsp.limit_peak(wav)

    def save(self, out_dir: str | Path, extra: dict | None = None) -> Path:
        """``vocoder.json``, ``weights.safetensors`` and the duration tables in ``durations/``."""
        from safetensors.torch import save_file

        d = write_config(out_dir, {"kind": self.kind, "sample_rate": self.sample_rate,
                                   "frame_rate": self.cfg.frame_rate, "n_units": self.cfg.n_units,
                                   "config": self.cfg.to_dict(), **(extra or {})})
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()},
                  str(d / WEIGHTS_NAME))
        self.durations.save(d / DURATIONS_DIR)
        return d

    @classmethod
    def load(cls, vocoder_dir: str | Path) -> EnvelopeVocoder:
        """Rebuild from a folder written by ``save``."""
        from safetensors.torch import load_file

        d = Path(vocoder_dir)
        cfg = read_config(d)
        if not (d / WEIGHTS_NAME).is_file():
            raise SpeechLMError(f"{d}: missing {WEIGHTS_NAME}; train with "
                                "`speechlm vocoder train --kind envelope`")
        net = EnvelopeNet(EnvelopeConfig.from_dict(cfg["config"], prefix="vocoder.json config."))
        net.load_state_dict(load_file(str(d / WEIGHTS_NAME)))
        return cls(net, d / DURATIONS_DIR)

