"""The closed-vocabulary pocketsphinx LM: every LM word must be in its dictionary."""

from __future__ import annotations

from speechlm.evaluate.domain_lm import domain_transcriber


def test_sentences_with_unpronounceable_words_leave_the_lm(tmp_path):
    sentences = ["the dog saw a cat.", "the cat saw zqxvyk.", "a dog ran."]
    domain_transcriber(sentences, out_dir=tmp_path)
    arpa = (tmp_path / "domain.arpa").read_text().split()
    dictionary = {line.split(" ", 1)[0].split("(", 1)[0]
                  for line in (tmp_path / "domain.dict").read_text().splitlines()}
    assert "zqxvyk" not in arpa and "zqxvyk" not in dictionary  # word at a sentence end
    assert {"dog", "cat", "saw", "ran"} <= dictionary and "dog" in arpa
