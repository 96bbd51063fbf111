/* cmd_info.c — `patchgrid info MODEL_DIR`: what a model directory holds. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "err.h"
#include "model.h"
#include "st.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: patchgrid info MODEL_DIR\n"
               "\n"
               "Reads a Hugging Face model directory (config.json, model.safetensors or a\n"
               "sharded model.safetensors.index.json) and prints its family, sizes,\n"
               "parameter count, stored dtype and the SHA-256 of its weight files.\n"
               "Every tensor is checked against the config; a bad file is an error.\n");
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') return cli_usage_error("info", "expected MODEL_DIR");
    Err err;
    Model *m;
    if (model_open(&m, argv[1], &err)) return cli_fail(&err);
    const ModelConfig *c = model_config(m);
    const StSet *st = model_weights(m);
    char sha[65];
    st_sha256_hex(st, sha);
    size_t bytes = 0;
    for (size_t i = 0; i < st_file_count(st); i++) {
        struct stat sb;
        if (stat(st_file_path(st, i), &sb) == 0) bytes += (size_t)sb.st_size;
    }
    printf("model       %s\n", model_dir(m));
    printf("family      %s\n", model_family_name(c->family));
    printf("layers      %zu\n", c->n_layers);
    printf("heads       %zu (d_head %zu)\n", c->n_heads, c->d_head);
    printf("d_model     %zu\n", c->d_model);
    printf("d_mlp       %zu\n", c->d_mlp);
    printf("vocab       %zu\n", c->d_vocab);
    printf("context     %zu\n", c->n_ctx);
    printf("activation  %s\n", model_act_name(c->act));
    printf("layer norm  eps %g\n", (double)c->ln_eps);
    printf("unembedding %s\n", c->tied ? "tied to the token embedding" : "separate lm_head");
    printf("parameters  %zu\n", model_param_count(m));
    printf("dtype       %s\n", model_dtype(m));
    printf("files       %zu (%.1f MB)\n", st_file_count(st), (double)bytes / 1e6);
    for (size_t i = 0; i < st_file_count(st); i++) printf("            %s\n", st_file_path(st, i));
    printf("sha256      %s\n", sha);
    model_close(m);
    return 0;
}
