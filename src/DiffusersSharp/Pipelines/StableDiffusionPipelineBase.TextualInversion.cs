using DiffusersSharp.Loading;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionPipelineBase
{
    /// <summary>
    /// diffusers' <c>load_textual_inversion(path, token, weight_name)</c>: reads a textual-inversion embedding (diffusers'
    /// <c>learned_embeds</c> format or A1111's <c>string_to_param</c> format) from a file, or from a folder or a Hugging
    /// Face Hub id (<c>sd-concepts-library/cat-toy</c>: only the file is downloaded into the Hub cache) holding
    /// <paramref name="weightName"/>, else <c>learned_embeds.safetensors</c> / <c>.bin</c>
    /// (<see cref="TextualInversionEmbedding.Locate"/>; <paramref name="subfolder"/> in it, a Hub id's revision, cache and
    /// Hub settings in <paramref name="options"/>), and adds its token to <see cref="Tokenizer"/> and its vectors to
    /// <see cref="TextEncoder"/>. <paramref name="token"/> overrides the file's token name. A multi-vector embedding adds
    /// <c>T</c>, <c>T_1</c>, …; prompts are rewritten so that <c>T</c> stands for all of them. Returns the tokens added.
    /// Errors (a token already in the vocabulary, an embedding of another width, an unreadable file) name the file and key
    /// and change nothing.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null, string? weightName = null, string? subfolder = null,
                                                      LoadOptions? options = null) =>
        LoadTextualInversion([path], [token], weightName, subfolder, options);

    /// <summary>
    /// Several embeddings at once (diffusers' list form): one token per path, or <c>null</c> tokens (each file names its
    /// own); the weight name, subfolder and options apply to each. All are checked before any is loaded.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<string> paths, IReadOnlyList<string?>? tokens = null, string? weightName = null,
                                                      string? subfolder = null, LoadOptions? options = null)
    {
        Require(LoaderMixins.TextualInversion, nameof(LoadTextualInversion), "load_textual_inversion");
        var embeddings = TextualInversion.Read(paths, tokens, weightName, subfolder, options);
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
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<TextualInversionEmbedding> embeddings)
    {
        Require(LoaderMixins.TextualInversion, nameof(LoadTextualInversion), "load_textual_inversion");
        return TextualInversion.Load(Tokenizer, TextEncoder, embeddings);
    }

    /// <summary>diffusers' <c>maybe_convert_prompt</c> with this pipeline's tokenizer (what <see cref="EncodePrompt"/> does first).</summary>
    public IReadOnlyList<string> MaybeConvertPrompt(IReadOnlyList<string> prompts) => TextualInversion.MaybeConvertPrompt(prompts, Tokenizer);
}
