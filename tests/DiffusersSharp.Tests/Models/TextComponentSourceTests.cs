using DiffusersSharp.Hub;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;

namespace DiffusersSharp.Tests.Models;

/// <summary>FromPretrained of the CLIP tokenizer and text encoder from a Hub id (offline, from the cache) and bad sources.</summary>
public class TextComponentSourceTests
{
    private const string Sha = "0123456789abcdef0123456789abcdef01234567";

    private static HubClient OfflineClient(string cacheDir) => new(new HubSettings
    {
        Endpoint = new Uri("http://127.0.0.1:9"),
        Offline = true,
        CacheDir = cacheDir,
    });

    private static void CopyInto(string snapshot, string sub, params string[] files)
    {
        Directory.CreateDirectory(Path.Combine(snapshot, sub));
        foreach (var f in files) File.Copy(Golden.Path("tiny-sd", sub, f), Path.Combine(snapshot, sub, f));
    }

    [Fact]
    public void HubIdLoadsFromTheCachedSnapshot()
    {
        using var dir = new TempDir();
        string storage = Path.Combine(dir.Path, "models--org--tiny-sd");
        string snapshot = Path.Combine(storage, "snapshots", Sha);
        CopyInto(snapshot, "tokenizer", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json");
        CopyInto(snapshot, "text_encoder", "config.json", "model.safetensors");
        Directory.CreateDirectory(Path.Combine(storage, "refs"));
        File.WriteAllText(Path.Combine(storage, "refs", "main"), Sha);
        using var hub = OfflineClient(dir.Path);

        var tok = CLIPTokenizer.FromPretrained("org/tiny-sd", hub: hub);
        Assert.Equal(Path.Combine(snapshot, "tokenizer"), tok.Folder);
        Assert.Equal(new[] { 998, 320, 816, 531, 539, 320, 66, 536, 999 }, tok.Encode("a photo of a cat"));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var model = CLIPTextModel.FromPretrained("org/tiny-sd", hub: hub);
        using var output = model.Forward(Golden.Tensor("tiny-sd-expected.safetensors", "tokenizer/input_ids"));
        Tol.Close(output.LastHiddenState, Golden.Tensor("tiny-sd-expected.safetensors", "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
    }

    [Fact]
    public void UncachedHubIdOfflineSaysSo()
    {
        using var dir = new TempDir();
        using var hub = OfflineClient(dir.Path);
        var ex = Assert.Throws<HubException>(() => CLIPTokenizer.FromPretrained("org/missing", hub: hub));
        Assert.Contains("org/missing", ex.Message);
        Assert.Contains("offline mode is enabled", ex.Message);
    }

    [Fact]
    public void NeitherFolderNorRepoIdIsNamed()
    {
        var ex = Assert.Throws<DiffusersException>(() => CLIPTextModel.FromPretrained("/no/such/folder"));
        Assert.Equal("CLIPTextModel.FromPretrained: '/no/such/folder' is neither a folder nor a Hub repository id", ex.Message);
    }

    [Fact]
    public void BinWeightsAreUsedWhenThereIsNoSafetensors()
    {
        using var dir = new TempDir();
        CopyInto(dir.Path, "text_encoder", "config.json");
        string bin = Path.Combine(dir.Path, "text_encoder", "pytorch_model.bin");
        File.WriteAllText(bin, "not a torch zip");
        var ex = Assert.ThrowsAny<DiffusersException>(() => CLIPTextModel.FromPretrained(dir.Path));
        Assert.Contains("pytorch_model.bin", ex.Message);

        File.Delete(bin);
        var none = Assert.Throws<WeightsException>(() => CLIPTextModel.FromPretrained(dir.Path));
        Assert.Equal($"No weights found in {Path.Combine(dir.Path, "text_encoder")}: looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json", none.Message);
    }
}
