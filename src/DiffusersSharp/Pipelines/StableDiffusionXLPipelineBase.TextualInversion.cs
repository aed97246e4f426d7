using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Text;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionXLPipelineBase
{
    /// <summary>The key of an SDXL embedding file's vectors for the first text encoder (CLIP ViT-L).</summary>
    public const string ClipLKey = "clip_l";

    /// <summary>The key of an SDXL embedding file's vectors for the second text encoder (OpenCLIP bigG).</summary>
    public const string ClipGKey = "clip_g";

    /// <summary>
    /// Textual inversion for SDXL: reads an SDXL embedding file (the A1111 / CivitAI layout: <c>clip_l</c> vectors for
    /// <see cref="TextEncoder"/>, <c>clip_g</c> vectors for <see cref="TextEncoder2"/>) and adds its token to both
    /// tokenizers and its vectors to both text encoders, as diffusers' <c>load_textual_inversion</c> does when called once
    /// per encoder. <paramref name="token"/> defaults to the file name without its extension (A1111's convention, since
    /// these files name no token). A refiner (no <c>text_encoder</c>) takes only the <c>clip_g</c> vectors. Returns the
    /// tokens added (<c>T</c>, <c>T_1</c>, … for a multi-vector embedding). Errors name the file and key and change nothing.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) => LoadTextualInversion([path], [token]);

    /// <summary>Several SDXL embedding files at once (one token per path, or null tokens); all are checked before any is loaded.</summary>
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<string> paths, IReadOnlyList<string?>? tokens = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (tokens is not null && tokens.Count != paths.Count)
            throw new DiffusersException($"load_textual_inversion: {paths.Count} paths but {tokens.Count} tokens; give one token (or null) per path");
        var clipL = new List<TextualInversionEmbedding>();
        var clipG = new List<TextualInversionEmbedding>();
        try
        {
            for (int i = 0; i < paths.Count; i++)
            {
                string name = tokens?[i] ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(paths[i]));
                if (TextEncoder is not null) clipL.Add(TextualInversionEmbedding.Read(paths[i], name, key: ClipLKey));
                clipG.Add(TextualInversionEmbedding.Read(paths[i], name, key: ClipGKey));
            }
            return LoadTextualInversion(clipL, clipG);
        }
        finally
        {
            foreach (var e in clipL.Concat(clipG)) e.Dispose();
        }
    }

    /// <summary>
    /// Embeddings already read: <paramref name="clipL"/> go to <see cref="Tokenizer"/> / <see cref="TextEncoder"/> (must be
    /// empty for a refiner), <paramref name="clipG"/> to <see cref="Tokenizer2"/> / <see cref="TextEncoder2"/>. Both pairs are
    /// checked before either changes. Returns the tokens added to the second tokenizer.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<TextualInversionEmbedding> clipL, IReadOnlyList<TextualInversionEmbedding> clipG)
    {
        ArgumentNullException.ThrowIfNull(clipL);
        ArgumentNullException.ThrowIfNull(clipG);
        var pairs = new List<(CLIPTokenizer, ICLIPTextEncoder, IReadOnlyList<TextualInversionEmbedding>)>();
        if (TextEncoder is not null) pairs.Add((Tokenizer!, TextEncoder, clipL));
        else if (clipL.Count > 0)
            throw new DiffusersException(
                $"{ClassName}: this pipeline has no text_encoder (a refiner); {clipL[0].Source} key '{clipL[0].Key}' has nowhere to go")
            { FilePath = clipL[0].Source, Key = clipL[0].Key };
        pairs.Add((Tokenizer2, TextEncoder2, clipG));
        return TextualInversion.Load(pairs)[^1];
    }
}
