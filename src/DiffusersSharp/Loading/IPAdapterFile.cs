using static TorchSharp.torch;

namespace DiffusersSharp.Loading;

/// <summary>
/// An IP-Adapter weight file as diffusers 0.25.1's <c>load_ip_adapter</c> reads it: <c>.safetensors</c> with flat
/// <c>image_proj.*</c> / <c>ip_adapter.*</c> keys, or a <c>torch.save</c> of <c>{"image_proj": {…}, "ip_adapter": {…}}</c>
/// (read with the allow-listed unpickler). The caller disposes the tensors (<see cref="Dispose"/>).
/// </summary>
public sealed class IPAdapterFile : IDisposable
{
    private IPAdapterFile(string path, Dictionary<string, Tensor> imageProj, Dictionary<string, Tensor> ipAdapter) =>
        (Path, ImageProj, IPAdapter) = (path, imageProj, ipAdapter);

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>The image projection's tensors (<c>image_proj</c>, h94's key names).</summary>
    public Dictionary<string, Tensor> ImageProj { get; }

    /// <summary>The attention tensors (<c>ip_adapter</c>: <c>1.to_k_ip.weight</c>, …).</summary>
    public Dictionary<string, Tensor> IPAdapter { get; }

    /// <summary>
    /// The file <paramref name="weightName"/> in <paramref name="subfolder"/> of a folder or Hugging Face Hub id
    /// (<see cref="PretrainedFileLocator"/>; only that file is downloaded), or <paramref name="pathOrId"/> itself when it is a file.
    /// </summary>
    public static string Locate(string pathOrId, string? subfolder, string weightName, LoadOptions? options = null) =>
        PretrainedFileLocator.Resolve(pathOrId, Rule, weightName, subfolder, options);

    private static readonly WeightFileRule Rule = new("IP-Adapter", "the weight_name given, e.g. ip-adapter_sd15.bin", "ip-adapter_sd15.bin", (_, _) => null);

    /// <summary>Reads the file; a file without both groups is a <see cref="WeightsException"/> naming it.</summary>
    public static IPAdapterFile Read(string path)
    {
        var imageProj = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var ipAdapter = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            {
                using var f = SafetensorsFile.Open(path);
                foreach (var (k, v) in f.LoadAll())
                {
                    if (k.StartsWith("image_proj.", StringComparison.Ordinal)) imageProj[k["image_proj.".Length..]] = v;
                    else if (k.StartsWith("ip_adapter.", StringComparison.Ordinal)) ipAdapter[k["ip_adapter.".Length..]] = v;
                    else v.Dispose();   // diffusers reads only these two groups
                }
            }
            else
            {
                var root = TorchBinFile.LoadTree(path);
                try
                {
                    var groups = root is PickleDict d ? d.Items.Select(kv => kv.Key as string).ToList() : [];
                    if (!groups.SequenceEqual(["image_proj", "ip_adapter"]))
                        throw new WeightsException($"{path}: Required keys are (`image_proj` and `ip_adapter`) missing from the state dict (it holds {(root is PickleDict ? "[" + string.Join(", ", groups) + "]" : "no dict")})") { FilePath = path };
                    foreach (var (kv, target) in ((PickleDict)root!).Items.Zip(new[] { imageProj, ipAdapter }))
                    {
                        if (kv.Value is not PickleDict group)
                            throw new WeightsException($"{path}: '{kv.Key}' is not a dict of tensors") { FilePath = path, Key = (string)kv.Key! };
                        foreach (var (k, v) in group.Items)
                            target[k as string ?? throw new WeightsException($"{path}: '{kv.Key}' has a key that is not a string") { FilePath = path }] =
                                v as Tensor ?? throw new WeightsException($"{path}: '{kv.Key}.{k}' is not a tensor") { FilePath = path, Key = $"{kv.Key}.{k}" };
                        group.Items.Clear();
                    }
                }
                finally
                {
                    TorchBinFile.DisposeTensors(root);
                }
            }
            if (imageProj.Count == 0 || ipAdapter.Count == 0)
                throw new WeightsException($"{path}: no {(imageProj.Count == 0 ? "image_proj" : "ip_adapter")} tensors: an IP-Adapter file holds image_proj.* and ip_adapter.* weights") { FilePath = path };
            return new IPAdapterFile(path, imageProj, ipAdapter);
        }
        catch
        {
            foreach (var t in imageProj.Values.Concat(ipAdapter.Values)) t.Dispose();
            throw;
        }
    }

    /// <summary>Disposes every tensor read.</summary>
    public void Dispose()
    {
        foreach (var t in ImageProj.Values.Concat(IPAdapter.Values)) t.Dispose();
    }
}
