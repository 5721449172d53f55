"""Speech LM architectures behind one interface, model directories, and initialisation.

``load_speech_lm(dir)`` reads a model directory of any registered architecture
(``ARCHITECTURES``: ``causal_lm`` for any ``AutoModelForCausalLM``, ``multistream`` for
pGSLM-style parallel streams, ...); ``cold_init`` / ``warm_init`` / ``from_model_init`` start one.
"""

from speechlm.models.architecture import ARCHITECTURES, Architecture, get_architecture
from speechlm.models.init import cold_init, from_model_init, warm_init, warm_start
from speechlm.models.speech_lm import SpeechLM, load_speech_lm, save_model_dir

__all__ = ["ARCHITECTURES", "Architecture", "SpeechLM", "cold_init", "from_model_init",
           "get_architecture", "load_speech_lm", "save_model_dir", "warm_init", "warm_start"]
