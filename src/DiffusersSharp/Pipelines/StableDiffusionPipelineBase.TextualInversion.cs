using DiffusersSharp.Loading;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionPipelineBase
{
    /// <summary>
    /// diffusers' <c>load_textual_inversion(path, token)</c>: reads a textual-inversion embedding (diffusers'
    /// <c>learned_embeds</c> format, A1111's <c>string_to_param</c> format, or a folder holding
    /// <c>learned_embeds.safetensors</c> / <c>.bin</c>) and adds its token to <see cref="Tokenizer"/> and its vectors to
    /// <see cref="TextEncoder"/>. <paramref name="token"/> overrides the file's token name. A multi-vector embedding adds
    /// <c>T</c>, <c>T_1</c>, …; prompts are rewritten so that <c>T</c> stands for all of them. Returns the tokens added.
    /// Errors (a token already in the vocabulary, an embedding of another width, an unreadable file) name the file and key
    /// and change nothing.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) =>
        LoadTextualInversion([path], [token]);

    /// <summary>
    /// Several embeddings at once (diffusers' list form): one token per path, or <c>null</c> tokens (each file names its
    /// own). All are checked before any is loaded.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<string> paths, IReadOnlyList<string?>? tokens = null)
    {
        var embeddings = TextualInversion.Read(paths, tokens);
        try
        {
            return LoadTextualInversion(embeddings);
        }
        finally
        {
            foreach (var e in embeddings) e.Dispose();
        }
    }

    /// <summary>Embeddings already read (e.g. one entry of an SDXL file: <c>TextualInversionEmbedding.Read(path, token, key: "clip_l")</c>).</summary>
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<TextualInversionEmbedding> embeddings) =>
        TextualInversion.Load(Tokenizer, TextEncoder, embeddings);

    /// <summary>diffusers' <c>maybe_convert_prompt</c> with this pipeline's tokenizer (what <see cref="EncodePrompt"/> does first).</summary>
    public IReadOnlyList<string> MaybeConvertPrompt(IReadOnlyList<string> prompts) => TextualInversion.MaybeConvertPrompt(prompts, Tokenizer);
}
