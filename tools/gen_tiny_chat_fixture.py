"""A tiny random chat model for the CLI tests of the post-training commands:
a LLaMA (transformers, random weights) with a byte-level BPE tokenizer
(vocabulary ~300, trained here on a few sentences) that has ChatML's markers
as special tokens and ChatML as its chat template. Run:
.venv/bin/python tools/gen_tiny_chat_fixture.py"""
import json, os
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates/kindling-cli/tests/fixtures/tiny-chat")
os.makedirs(OUT, exist_ok=True)
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
text = ["What is 123 + 456? Answer with the number.", "579", "My cat is Tom.", "Which is bigger, 9.11 or 9.3?",
        "Name a colour.", "Blue.", "Human: hello Assistant: hi there, how can I help?", "user assistant system"] * 20
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(text, trainer)
tok.save(os.path.join(OUT, "tokenizer.json"))
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"chat_template": CHATML, "eos_token": "<|im_end|>", "bos_token": None,
               "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
                  tie_word_embeddings=True, eos_token_id=tok.token_to_id("<|im_end|>"))
LlamaForCausalLM(cfg).save_pretrained(OUT, safe_serialization=True)
gc = os.path.join(OUT, "generation_config.json")
if os.path.exists(gc):
    os.remove(gc)
print("vocab", tok.get_vocab_size(), "files", sorted(os.listdir(OUT)))
