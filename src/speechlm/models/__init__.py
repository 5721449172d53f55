"""Single-stream speech LMs on any ``AutoModelForCausalLM``: init, model directories, loading."""

from speechlm.models.init import cold_init, warm_init, warm_start
from speechlm.models.speech_lm import SpeechLM, load_speech_lm, save_model_dir

__all__ = ["SpeechLM", "cold_init", "load_speech_lm", "save_model_dir", "warm_init", "warm_start"]
