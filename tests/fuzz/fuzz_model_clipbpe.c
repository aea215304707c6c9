/* Fuzz target: CLIP's BPE tokenizer (src/model/clip_bpe.c).  First byte
 * even: the rest is a text tokenised with a small built-in merges file
 * (checked: ids in the vocabulary, <|startoftext|> first and
 * <|endoftext|> the last non-zero id); odd:
 * the rest is a merges file to load, then a fixed text is tokenised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model.h"

static const char merges[] = "#version: 0.2\ni n\nt h\na n\nr e\na r\ne r\nth e</w>\nin g</w>\n"
                             "o u\no n\ns t\nc a\nca t</w>\nd o\ndo g</w>\nÃ ©\nð Ł\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model_clip_bpe *t = NULL;
    char err[256];
    if (size == 0)
        return 0;
    bool text_mode = (data[0] & 1) == 0;
    const char *m = text_mode ? merges : (const char *)data + 1;
    size_t mlen = text_mode ? strlen(merges) : size - 1;
    if (model_clip_bpe_load(m, mlen, NULL, &t, err, sizeof err) < 0)
        return 0;
    char *text = text_mode ? xstrndup((const char *)data + 1, size - 1) : xstrdup("a photo of a cat");
    int32_t ids[MODEL_CLIP_CONTEXT];
    size_t nv = model_clip_bpe_vocab_size(t);
    for (int trunc = 0; trunc < 2; trunc++) {
        if (model_clip_bpe_tokenize(t, text, trunc, ids, err, sizeof err) == 0) {
            if (ids[0] != (int32_t)nv - 2)
                abort();
            int last = 0;
            for (int i = 1; i < MODEL_CLIP_CONTEXT; i++) {
                if (ids[i] < 0 || (size_t)ids[i] >= nv)
                    abort();
                if (ids[i] != 0)
                    last = i;
            }
            if (ids[last] != (int32_t)nv - 1) /* <|endoftext|> ends the ids */
                abort();
        } else if (trunc) {
            if (strlen(text) <= (16u << 10))
                abort(); /* truncation only fails on the size limit */
        }
    }
    free(text);
    model_clip_bpe_free(t);
    return 0;
}
