using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// A textual-inversion embedding read from a file, as diffusers 0.25.1's <c>load_textual_inversion</c> reads them:
/// the diffusers format (<c>{token: tensor[dim]}</c>, <c>learned_embeds.safetensors</c> / <c>.bin</c>), A1111's
/// (a pickled dict whose <c>string_to_param["*"]</c> holds [n, dim] and whose <c>name</c> is the token), a bare
/// tensor (token required), or, with <c>key</c>, one entry of a file that holds several (SDXL's <c>clip_l</c> /
/// <c>clip_g</c>). <see cref="Vectors"/> is always [n, dim]: n &gt; 1 is a multi-vector embedding. Pickles are read by
/// the allow-listed unpickler (nothing executed). Dispose it to free the vectors.
/// </summary>
public sealed class TextualInversionEmbedding : IDisposable
{
    /// <summary>The file diffusers looks for in a folder, safetensors first.</summary>
    public static readonly IReadOnlyList<string> FolderFileNames = ["learned_embeds.safetensors", "learned_embeds.bin"];

    /// <summary>
    /// How a folder's or a repository's embedding file is chosen when no weight name is given: diffusers'
    /// <c>TEXT_INVERSION_NAME_SAFE</c>, else <c>TEXT_INVERSION_NAME</c> (no guessing, as in diffusers).
    /// </summary>
    public static WeightFileRule WeightFiles { get; } = new("textual inversion", string.Join(" or ", FolderFileNames), FolderFileNames[0],
        (files, _) => FolderFileNames.FirstOrDefault(files.Contains));

    /// <summary>
    /// An embedding of <paramref name="token"/> (one row per vector) read from <paramref name="source"/> under
    /// <paramref name="key"/>; takes ownership of <paramref name="vectors"/>.
    /// </summary>
    public TextualInversionEmbedding(string token, Tensor vectors, string source, string key)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        if (string.IsNullOrWhiteSpace(token))
            throw new DiffusersException($"{source}: key '{key}': the token of a textual inversion embedding must not be empty") { FilePath = source, Key = key };
        if (vectors.dim() is not (1 or 2) || vectors.shape[0] == 0 || vectors.shape[^1] == 0 || !vectors.is_floating_point())
            throw new DiffusersException(
                $"{source}: key '{key}': a textual inversion embedding is a float tensor [dim] or [vectors, dim], got {vectors.dtype} [{string.Join(", ", vectors.shape)}]")
            { FilePath = source, Key = key };
        Token = token;
        Vectors = TorchUtils.Scoped(() => vectors.dim() == 1 ? vectors.unsqueeze(0) : vectors.alias()).DetachFromDisposeScope();
        Source = source;
        Key = key;
    }

    /// <summary>The token the embedding is loaded under (the file's, unless one was given).</summary>
    public string Token { get; }

    /// <summary>The embedding vectors, [n, dim] (CPU, the file's dtype).</summary>
    public Tensor Vectors { get; }

    /// <summary>The file it came from (for messages).</summary>
    public string Source { get; }

    /// <summary>Where in the file the vectors were (<c>&lt;cat-toy&gt;</c>, <c>string_to_param.*</c>, <c>clip_g</c>, …).</summary>
    public string Key { get; }

    /// <summary>Vectors in the embedding (tokens it adds: <c>T</c>, <c>T_1</c>, …, <c>T_(n-1)</c>).</summary>
    public int VectorCount => (int)Vectors.shape[0];

    /// <summary>Width of each vector; must equal the text encoder's hidden size.</summary>
    public int Width => (int)Vectors.shape[1];

    /// <summary>
    /// Reads <paramref name="path"/>: a file (safetensors, else a torch zip pickle), or a folder or Hub id
    /// (<see cref="Locate"/>) holding <c>learned_embeds.safetensors</c> or <c>learned_embeds.bin</c>. <paramref name="token"/> overrides the file's token
    /// name (required for a bare tensor or a <paramref name="key"/>ed entry); <paramref name="key"/> picks one entry of a
    /// file that holds several (a dotted path into nested dicts, e.g. <c>clip_g</c> or <c>string_to_param.*</c>).
    /// </summary>
    public static TextualInversionEmbedding Read(string path, string? token = null, string? key = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string file = Locate(path);
        object? root = ReadRoot(file);
        try
        {
            var (loadedToken, vectors, where) = Interpret(root, file, key);
            string name = token ?? loadedToken ?? throw new DiffusersException(
                key is null
                    ? $"{file}: You are trying to load a textual inversion embedding that has been saved as a PyTorch tensor. Make sure to pass the name of the corresponding token in this case: `token=...`."
                    : $"{file}: key '{key}': the file names no token for this entry; pass the token to load it under")
            { FilePath = file, Key = where };
            return new TextualInversionEmbedding(name, vectors, file, where);
        }
        finally
        {
            TorchBinFile.DisposeTensors(root);
        }
    }

    /// <summary>
    /// The embedding file of <paramref name="pathOrId"/> (diffusers' <c>load_textual_inversion_state_dicts</c> file lookup):
    /// a file as it is; in a folder or a Hugging Face Hub repository (<see cref="PretrainedFileLocator"/>;
    /// <paramref name="options"/> give the revision, cache and Hub settings) the file <paramref name="weightName"/> names,
    /// else <c>learned_embeds.safetensors</c>, else <c>learned_embeds.bin</c>.
    /// </summary>
    public static string Locate(string pathOrId, string? weightName = null, string? subfolder = null, LoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pathOrId);
        return PretrainedFileLocator.Resolve(pathOrId, WeightFiles, weightName, subfolder, options);
    }

    // safetensors first, as diffusers (use_safetensors=None: try safetensors, fall back to torch.load)
    private static object? ReadRoot(string file)
    {
        bool zip;
        using (var f = File.OpenRead(file))
        {
            Span<byte> magic = stackalloc byte[4];
            zip = f.Read(magic) == 4 && magic[0] == (byte)'P' && magic[1] == (byte)'K' && magic[2] == 3 && magic[3] == 4;
        }
        if (zip) return TorchBinFile.LoadTree(file);
        using var st = SafetensorsFile.Open(file);
        var dict = new PickleDict();
        foreach (var (k, v) in st.LoadAll()) dict.Items.Add(new(k, v));
        return dict;
    }

    private static (string? Token, Tensor Vectors, string Key) Interpret(object? root, string file, string? key)
    {
        if (key is not null)
        {
            object? node = root;
            foreach (var part in key.Split('.'))
                node = node is PickleDict d && Find(d, part, out var v) ? v
                    : throw new DiffusersException($"{file}: has no key '{key}' (it holds {Describe(root)})") { FilePath = file, Key = key };
            return (null, node as Tensor ?? throw NotATensor(file, key, node), key);
        }
        switch (root)
        {
            case Tensor t:
                return (null, t, "(tensor)");
            case PickleDict { Items.Count: 1 } d:   // diffusers: {token: tensor}
            {
                var (k, v) = d.Items[0];
                string name = k as string ?? throw new DiffusersException($"{file}: the single key is not a string ({k})") { FilePath = file };
                return (name, v as Tensor ?? throw NotATensor(file, name, v), name);
            }
            case PickleDict d when Find(d, "string_to_param", out var param):   // A1111
            {
                if (!Find(d, "name", out var n) || n is not string name)
                    throw new DiffusersException($"{file}: key 'name': an A1111 embedding names its token under 'name' (a string); pass the token instead") { FilePath = file, Key = "name" };
                if (param is not PickleDict p || !Find(p, "*", out var vectors))
                    throw new DiffusersException($"{file}: key 'string_to_param': expected a dict with the vectors under '*'") { FilePath = file, Key = "string_to_param" };
                return (name, vectors as Tensor ?? throw NotATensor(file, "string_to_param.*", vectors), "string_to_param.*");
            }
            default:
                throw new DiffusersException(
                    $"{file}: Loaded state dictonary is incorrect: it holds {Describe(root)}. Please verify that the loaded state dictionary of the " +
                    "textual embedding either only has a single key or includes the `string_to_param` input key" +
                    (root is PickleDict ? " (for a file with several embeddings, such as SDXL's clip_l / clip_g, pass the key to load)." : "."))
                { FilePath = file };
        }
    }

    private static bool Find(PickleDict d, string key, out object? value)
    {
        foreach (var (k, v) in d.Items)
            if (k is string s && s == key) { value = v; return true; }
        value = null;
        return false;
    }

    private static DiffusersException NotATensor(string file, string key, object? value) =>
        new($"{file}: key '{key}' holds {Describe(value)}, not a tensor of embedding vectors") { FilePath = file, Key = key };

    private static string Describe(object? node) => node switch
    {
        null => "None",
        Tensor t => $"a {t.dtype} tensor [{string.Join(", ", t.shape)}]",
        PickleDict d => "a dict with keys [" + string.Join(", ", d.Items.Select(i => $"'{i.Key}'")) + "]",
        string s => $"the string '{s}'",
        _ => $"a {node.GetType().Name}",
    };

    /// <summary>Disposes the vectors.</summary>
    public void Dispose() => Vectors.Dispose();
}
