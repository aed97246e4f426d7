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
    /// per encoder. <paramref name="path"/> is a file, or a folder or Hugging Face Hub id holding <paramref name="weightName"/>
    /// (else <c>learned_embeds.safetensors</c> / <c>.bin</c>; <see cref="TextualInversionEmbedding.Locate"/>, with
    /// <paramref name="subfolder"/> and <paramref name="options"/>). <paramref name="token"/> defaults to the file name
    /// without its extension (A1111's convention, since these files name no token: the weight name's, else the last part
    /// of <paramref name="path"/>). A refiner (no <c>text_encoder</c>) takes only the <c>clip_g</c> vectors. Returns the
    /// tokens added (<c>T</c>, <c>T_1</c>, … for a multi-vector embedding). Errors name the file and key and change nothing.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null, string? weightName = null, string? subfolder = null,
                                                      LoadOptions? options = null) =>
        LoadTextualInversion([path], [token], weightName, subfolder, options);

    /// <summary>
    /// Several SDXL embedding files at once (one token per path, or null tokens; the weight name, subfolder and options
    /// apply to each); all are checked before any is loaded.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(IReadOnlyList<string> paths, IReadOnlyList<string?>? tokens = null, string? weightName = null,
                                                      string? subfolder = null, LoadOptions? options = null)
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
                string name = tokens?[i] ?? EmbeddingToken(paths[i], weightName);
                string file = TextualInversionEmbedding.Locate(paths[i], weightName, subfolder, options);
                if (TextEncoder is not null) clipL.Add(TextualInversionEmbedding.Read(file, name, key: ClipLKey));
                clipG.Add(TextualInversionEmbedding.Read(file, name, key: ClipGKey));
            }
            return LoadTextualInversion(clipL, clipG);
        }
        finally
        {
            foreach (var e in clipL.Concat(clipG)) e.Dispose();
        }
    }

    /// <summary>
    /// The token an SDXL embedding is loaded under when none is given (A1111's convention): the file name of
    /// <paramref name="weightName"/>, else of <paramref name="path"/> (a file, folder or Hub id), without its extension.
    /// </summary>
    public static string EmbeddingToken(string path, string? weightName = null) =>
        Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(weightName ?? path));

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
