using System.Text;
using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>Safetensors: corrupt files are refused with the file and tensor named; Save → Open round trips.</summary>
public class SafetensorsFileTests
{
    /// <summary>A safetensors file from a header text and raw data bytes (no padding).</summary>
    private static string Raw(TempDir dir, string header, int dataBytes, long? declaredLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        string path = dir.File("w.safetensors");
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)(declaredLength ?? h.Length)));
        fs.Write(h);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    private static WeightsException Refused(string path) => Assert.Throws<WeightsException>(() => SafetensorsFile.Open(path));

    [Fact]
    public void TruncatedDataNamesTheTensor()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", 20);
        var e = Refused(p);
        Assert.Equal($"{p}: corrupt safetensors header for tensor 'b': data_offsets [8, 24] run past the end of the data (20 bytes; the file is truncated)", e.Message);
        Assert.Equal("b", e.Key);
        Assert.Equal(p, e.FilePath);
    }

    /// <summary>
    /// A file shortened after it was opened and validated (another process rewriting it): the read fails with the file
    /// and tensor named. (Through a memory map, as this class once read, the process died of SIGBUS.)
    /// </summary>
    [Fact]
    public void AFileShortenedAfterOpeningNamesTheTensor()
    {
        using var dir = new TempDir();
        string p = dir.File("w.safetensors");
        using (var a = torch.arange(4, dtype: ScalarType.Float32))
        using (var b = torch.arange(1024, dtype: ScalarType.Float32))
            SafetensorsFile.Save(p, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        using var file = SafetensorsFile.Open(p);
        using (var a = file.Load("a")) Assert.Equal([0f, 1f, 2f, 3f], a.data<float>().ToArray());
        long length = new FileInfo(p).Length;
        using (var shorten = new FileStream(p, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) shorten.SetLength(length - 100);
        var e = Assert.Throws<WeightsException>(() => file.Load("b"));
        Assert.Equal(p, e.FilePath);
        Assert.Equal("b", e.Key);
        Assert.StartsWith($"{p}: the file ends at byte {length - 100}, inside tensor 'b' (bytes ", e.Message);
        Assert.EndsWith("): it was shortened after it was opened", e.Message);
    }

    [Fact]
    public void FileShorterThanTheLengthFieldIsRefused()
    {
        using var dir = new TempDir();
        string p = dir.File("w.safetensors");
        File.WriteAllBytes(p, [1, 2, 3]);
        Assert.Equal($"{p}: not a safetensors file (only 3 bytes; the 8-byte header length is missing)", Refused(p).Message);
    }

    [Fact]
    public void HeaderLengthBeyondTheFileIsRefused()
    {
        using var dir = new TempDir();
        string p = Raw(dir, "{}", 0, declaredLength: 1000);
        Assert.Equal($"{p}: corrupt safetensors header: header length 1000 does not fit a file of 10 bytes", Refused(p).Message);
    }

    [Fact]
    public void InvalidJsonHeaderIsRefused()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F32",}""", 0);
        var e = Refused(p);
        Assert.True(e.Message.StartsWith($"{p}: corrupt safetensors header: not valid JSON at line 1, column 21 ("), e.Message);
    }

    [Fact]
    public void OverlappingOffsetsNameBothTensors()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12);
        var e = Refused(p);
        Assert.Equal($"{p}: corrupt safetensors header: tensors 'a' [0, 8] and 'b' [4, 12] overlap", e.Message);
        Assert.Equal("b", e.Key);
    }

    [Fact]
    public void DtypeTimesShapeMustEqualTheByteLength()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}}""", 8);
        Assert.Equal($"{p}: corrupt safetensors header for tensor 'a': dtype F16 × shape [2, 3] = 12 bytes, but data_offsets span 8", Refused(p).Message);
    }

    [Fact]
    public void UnknownDtypeIsRefused()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}""", 4);
        Assert.Equal($"{p}: corrupt safetensors header for tensor 'a': unknown dtype 'F31'", Refused(p).Message);
    }

    [Fact]
    public void ValidButUnsupportedDtypeFailsOnLoadNamingTheTensor()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"u":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}}""", 4);
        using var f = SafetensorsFile.Open(p);
        var e = Assert.Throws<WeightsException>(() => f.Load("u"));
        Assert.Equal($"{p}: tensor 'u': safetensors dtype 'U32' is not supported by DiffusersSharp: TorchSharp 0.107 has no unsigned 32-bit tensor type", e.Message);
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}}""", "invalid data_offsets [\"0\",4]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", "invalid data_offsets [4,0]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "invalid dimension -1")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", "shape [4294967296, 4294967296] is too large")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", "missing dtype")]
    [InlineData("""{"a":[1,2]}""", "entry is not an object")]
    public void MalformedEntriesNameTheTensor(string header, string what)
    {
        using var dir = new TempDir();
        string p = Raw(dir, header, 4);
        Assert.Equal($"{p}: corrupt safetensors header for tensor 'a': {what}", Refused(p).Message);
    }

    [Fact]
    public void DuplicateTensorNamesAreRefused()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8);
        Assert.Equal($"{p}: corrupt safetensors header: tensor 'a' is listed twice", Refused(p).Message);
    }

    [Fact]
    public void HolesOrTrailingBytesAreRefused()
    {
        using var dir = new TempDir();
        string p = Raw(dir, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8);
        Assert.Equal($"{p}: corrupt safetensors file: the data section is 8 bytes but its tensors cover 4 (holes or trailing bytes)", Refused(p).Message);
    }

    [Fact]
    public void SaveThenOpenRoundTripsEveryDtypeShapeAndMetadata()
    {
        using var dir = new TempDir();
        using var g = new Generator(3);
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = torch.randn(new long[] { 3, 5 }, generator: g),
            ["f16"] = torch.randn(new long[] { 7 }, generator: g).to(ScalarType.Float16),
            ["bf16"] = torch.randn(new long[] { 2, 2, 2 }, generator: g).to(ScalarType.BFloat16),
            ["f64"] = torch.tensor(new[] { Math.PI, -1e300 }),
            ["i64"] = torch.tensor(new long[] { long.MinValue, 0, long.MaxValue }),
            ["i32"] = torch.tensor(new[] { -5, 6 }),
            ["u8"] = torch.tensor(new byte[] { 0, 255 }),
            ["bool"] = torch.tensor(new[] { true, false, true }),
            ["scalar"] = torch.tensor(2.5f),
            ["empty"] = torch.zeros(0, 4),
            ["transposed"] = torch.arange(6, ScalarType.Float32).reshape(2, 3).t(),
        };
        string p = dir.File("m.safetensors");
        SafetensorsFile.Save(p, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        using var f = SafetensorsFile.Open(p);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(tensors.Keys.OrderBy(k => k, StringComparer.Ordinal), f.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (name, t) in tensors)
        {
            using var back = f.Load(name);
            Assert.Equal(t.dtype, back.dtype);
            Assert.Equal(t.shape, back.shape);
            Assert.True(t.contiguous().bytes.SequenceEqual(back.bytes), name);
        }
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, f.Load("transposed").data<float>().ToArray());
        // the header length field + header is a multiple of 8, so data is aligned
        var len = BitConverter.ToUInt64(File.ReadAllBytes(p).AsSpan(0, 8));
        Assert.Equal(0UL, (8 + len) % 8);
    }

    [Fact]
    public void GoldenFileOpensAndLoadsEveryTensor()
    {
        using var f = Golden.Open(Path.Combine("tiny-ddpm", "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal("pt", f.Metadata["format"]);
        var all = f.LoadAll();
        using var w = all["conv_in.weight"];
        Assert.Equal(new long[] { 16, 3, 3, 3 }, w.shape);
        foreach (var t in all.Values) t.Dispose();
    }

    [Fact]
    public void FailedSaveLeavesTheExistingFileIntact()
    {
        using var dir = new TempDir();
        string p = dir.File("m.safetensors");
        SafetensorsFile.Save(p, new Dictionary<string, Tensor> { ["a"] = torch.ones(2) });
        byte[] before = File.ReadAllBytes(p);
        var bad = new Dictionary<string, Tensor> { ["a"] = torch.ones(2), ["c"] = torch.ones(new long[] { 2 }, ScalarType.ComplexFloat32) };
        var e = Assert.Throws<WeightsException>(() => SafetensorsFile.Save(p, bad));
        Assert.Equal($"{p}: tensor 'c' is ComplexFloat32, which safetensors cannot hold (it holds F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL)", e.Message);
        Assert.Equal((p, "c"), (e.FilePath, e.Key));
        Assert.Equal(before, File.ReadAllBytes(p));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    /// <summary>
    /// The tiny-sd text encoder's folder with one tensor stored as <paramref name="f8"/> (F8_E4M3 / F8_E5M2): written as
    /// U8 of the same shape, then the header's dtype changed (both take one byte an element, so the offsets hold).
    /// </summary>
    private static string TextEncoderWithFloat8(TempDir dir, string key, long[] shape, string f8)
    {
        string folder = dir.File("text_encoder");
        Directory.CreateDirectory(folder);
        File.Copy(Golden.Path("tiny-sd", "text_encoder", "config.json"), Path.Combine(folder, "config.json"));
        string file = Path.Combine(folder, "model.safetensors");
        using (var f = Golden.Open(Path.Combine("tiny-sd", "text_encoder", "model.safetensors")))
        {
            var all = f.LoadAll();
            all.Remove(key, out var replaced);
            replaced?.Dispose();
            all[key] = torch.full(shape, 0x38, ScalarType.Byte); // 1.0 in F8_E4M3, 0.5 in F8_E5M2
            SafetensorsFile.Save(file, all, new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var t in all.Values) t.Dispose();
        }
        DiffusersSharp.Tests.Fuzz.WeightFiles.EditHeader(file, h => h[key]!["dtype"] = f8);
        return file;
    }

    [Fact]
    public void AFloat8TensorTheModelDropsDoesNotRefuseTheFile()
    {
        // transformers drops a legacy position_ids buffer; stored as float8 it is never read, so the file loads
        using var dir = new TempDir();
        string file = TextEncoderWithFloat8(dir, "text_model.embeddings.position_ids", [1, 77], "F8_E4M3");
        using (var f = SafetensorsFile.Open(file))
            Assert.Equal("F8_E4M3", f.Entries["text_model.embeddings.position_ids"].DType);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var model = DiffusersSharp.Models.CLIPTextModel.FromPretrained(dir.Path, "text_encoder");
        using var output = model.Forward(Golden.Tensor("tiny-sd-expected.safetensors", "tokenizer/input_ids"));
        Tol.Close(output.LastHiddenState, Golden.Tensor("tiny-sd-expected.safetensors", "text_encoder/last_hidden_state"), Tol.ModelAbs, "last_hidden_state");
    }

    [Fact]
    public void AFloat8TensorTheModelNeedsLoadsDecoded()
    {
        // 0x38 is 0.5 in F8_E5M2 (1.0 in F8_E4M3); before float8 was decoded, reading it was an error
        using var dir = new TempDir();
        const string Key = "text_model.final_layer_norm.weight";
        string file = TextEncoderWithFloat8(dir, Key, [32], "F8_E5M2");
        using (var model = DiffusersSharp.Models.CLIPTextModel.FromPretrained(dir.Path, "text_encoder"))
            Assert.Equal(Enumerable.Repeat(0.5f, 32), model.state_dict()[Key].data<float>().ToArray());
        using var f = SafetensorsFile.Open(file);
        using var read = f.Load(Key);
        Assert.Equal(ScalarType.Float32, read.dtype);
        Assert.Equal(Enumerable.Repeat(0.5f, 32), read.data<float>().ToArray());
    }

    /// <summary>The tiny-sd text encoder's folder with <paramref name="key"/> stored as <paramref name="dtype"/> (U16, U32,
    /// U64): its values written as the signed type of that width, then the header's dtype changed.</summary>
    private static string TextEncoderWithUnsigned(TempDir dir, string key, string dtype)
    {
        string folder = dir.File("text_encoder");
        Directory.CreateDirectory(folder);
        File.Copy(Golden.Path("tiny-sd", "text_encoder", "config.json"), Path.Combine(folder, "config.json"));
        string file = Path.Combine(folder, "model.safetensors");
        using (var f = Golden.Open(Path.Combine("tiny-sd", "text_encoder", "model.safetensors")))
        {
            var all = f.LoadAll();
            var signed = dtype switch { "U16" => ScalarType.Int16, "U32" => ScalarType.Int32, _ => ScalarType.Int64 };
            var replaced = all[key];
            all[key] = torch.ones(replaced.shape, signed);
            replaced.Dispose();
            SafetensorsFile.Save(file, all, new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var t in all.Values) t.Dispose();
        }
        DiffusersSharp.Tests.Fuzz.WeightFiles.EditHeader(file, h => h[key]!["dtype"] = dtype);
        return file;
    }

    [Theory]
    [InlineData("U16")]
    [InlineData("U32")]
    [InlineData("U64")]
    public void AnUnsignedTensorForAFloatWeightIsRefusedNamingItsStoredDtype(string dtype)
    {
        // TorchSharp has no unsigned 16-64-bit type: the streamed load's placeholder stands in as Int64, and the message
        // named that stand-in ("stored as Int64")
        using var dir = new TempDir();
        const string Key = "text_model.final_layer_norm.weight";
        string file = TextEncoderWithUnsigned(dir, Key, dtype);
        var load = Assert.Throws<WeightsException>(() => DiffusersSharp.Models.CLIPTextModel.FromPretrained(dir.Path, "text_encoder"));
        Assert.Equal($"{file}: weight '{Key}' is stored as {dtype} but CLIPTextModel holds Float32", load.Message);
        Assert.Equal((file, Key), (load.FilePath, load.Key));
        // read alone (LoRA, single-file and textual inversion read so): refused naming the file, the tensor and the dtype
        using var f = SafetensorsFile.Open(file);
        var read = Assert.Throws<WeightsException>(() => f.Load(Key));
        Assert.Equal($"{file}: tensor '{Key}': safetensors dtype '{dtype}' is not supported by DiffusersSharp: TorchSharp 0.107 has no unsigned {dtype[1..]}-bit tensor type", read.Message);
    }
}
