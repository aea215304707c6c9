#!/usr/bin/env python3
"""Reference CLIP tokenizer for test_model_clip: OpenAI CLIP's
clip/simple_tokenizer.py + clip.tokenize, written from the published
algorithm with the standard library only (no ftfy, no `regex`):

  html.unescape twice, whitespace runs -> ' ', strip, lower();
  pre-tokens: <|startoftext|> | <|endoftext|> | 's 't 're 've 'm 'll 'd
              | letters+ (unicodedata category L*) | one number (N*)
              | [^ whitespace letters numbers]+  (first alternative wins);
  bytes_to_unicode, BPE by merge rank, vocabulary derived from the merges.

Usage: clip_bpe_ref.py MERGES TEXTS.json OUT.json
  OUT.json: [[ids without specials] per text]
"""
import html
import json
import sys
import unicodedata


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Tokenizer:
    def __init__(self, merges_path):
        self.byte_encoder = bytes_to_unicode()
        lines = open(merges_path, encoding="utf-8").read().split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            a, b = best
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return " ".join(word)

    @staticmethod
    def cls(ch):
        if ch.isspace():
            return "s"
        c = unicodedata.category(ch)
        return "L" if c[0] == "L" else "N" if c[0] == "N" else "o"

    def pretokens(self, text):
        i, n, out = 0, len(text), []
        while i < n:
            if text[i].isspace():
                i += 1
                continue
            hit = None
            for s in ("<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
                if text.startswith(s, i):
                    hit = s
                    break
            if hit:
                out.append(hit)
                i += len(hit)
                continue
            k = self.cls(text[i])
            j = i + 1
            if k == "L":
                while j < n and self.cls(text[j]) == "L":
                    j += 1
            elif k == "o":
                while j < n and self.cls(text[j]) == "o":
                    j += 1
            out.append(text[i:j])
            i = j
        return out

    def encode(self, text):
        text = html.unescape(html.unescape(text))
        text = " ".join(text.split()).strip().lower()
        ids = []
        for tok in self.pretokens(text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(tok).split(" "))
        return ids


def main():
    tok = Tokenizer(sys.argv[1])
    texts = json.load(open(sys.argv[2], encoding="utf-8"))
    json.dump([tok.encode(t) for t in texts], open(sys.argv[3], "w"))


if __name__ == "__main__":
    main()
