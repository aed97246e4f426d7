using DiffusersSharp.Loading;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>The pickled <c>.bin</c> reader: golden checkpoint, strides/offsets, refusal of foreign globals.</summary>
public class TorchBinFileTests
{
    [Fact]
    public void GoldenBinLoadsExactlyTheSafetensorsTensors()
    {
        var bin = TorchBinFile.LoadAll(Golden.Path("tiny-ddpm", "unet", "diffusion_pytorch_model.bin"));
        using var st = SafetensorsFile.Open(Golden.Path("tiny-ddpm", "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal(st.Keys.OrderBy(k => k, StringComparer.Ordinal), bin.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.True(bin.Count > 100, $"only {bin.Count} tensors");
        foreach (var (name, t) in bin)
        {
            using var expected = st.Load(name);
            Assert.Equal(expected.dtype, t.dtype);
            Assert.Equal(expected.shape, t.shape);
            Assert.True(t.is_contiguous(), name);
            Assert.True(expected.bytes.SequenceEqual(t.bytes), $"{name} differs");
        }
        foreach (var t in bin.Values) t.Dispose();
    }

    private static byte[] Floats(params float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void StorageOffsetsStridesAndSharedStoragesAreHonoured()
    {
        // storage 0 = 0..11; 'a' is the whole storage as [3, 4]; 't' = offset 2, size [2, 3], stride [1, 2]
        // (so t[i][j] = storage[2 + i + 2j]); 'h' is a half storage.
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        p.Str("a").Tensor("FloatStorage", "0", 12, 0, [3, 4], [4, 1]);
        p.Str("t").Tensor("FloatStorage", "0", 12, 2, [2, 3], [1, 2]);
        p.Str("h").Tensor("HalfStorage", "1", 2, 0, [2], [1]);
        p.Op('u');
        using var dir = new TempDir();
        string path = dir.File("w.bin");
        var half = new byte[] { 0x00, 0x3C, 0x00, 0xC0 }; // 1.0, -2.0 in IEEE half
        PickleBuilder.WriteZip(path, p.Stop(), new Dictionary<string, byte[]>
        {
            ["0"] = Floats(Enumerable.Range(0, 12).Select(i => (float)i).ToArray()),
            ["1"] = half,
        });
        var w = TorchBinFile.LoadAll(path);
        Assert.Equal(new long[] { 3, 4 }, w["a"].shape);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), w["a"].data<float>().ToArray());
        Assert.Equal(new long[] { 2, 3 }, w["t"].shape);
        Assert.Equal(new float[] { 2, 4, 6, 3, 5, 7 }, w["t"].data<float>().ToArray());
        Assert.Equal(ScalarType.Float16, w["h"].dtype);
        Assert.Equal(new float[] { 1, -2 }, w["h"].to(ScalarType.Float32).data<float>().ToArray());
        // the two views of storage 0 are independent tensors
        w["t"].fill_(-1);
        Assert.Equal(11f, w["a"][2, 3].item<float>());
    }

    [Fact]
    public void ViewPastTheEndOfItsStorageIsRefused()
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        p.Str("bad").Tensor("FloatStorage", "0", 4, 2, [3], [1]);
        p.Op('u');
        using var dir = new TempDir();
        string path = dir.File("w.bin");
        PickleBuilder.WriteZip(path, p.Stop(), new Dictionary<string, byte[]> { ["0"] = Floats(1, 2, 3, 4) });
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(path));
        Assert.Equal($"{path}: tensor 'bad' (size [3], stride [1], offset 2) reaches element 4 of a storage of 4", e.Message);
    }

    [Fact]
    public void StorageOfTheWrongLengthIsRefused()
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        p.Str("w").Tensor("FloatStorage", "0", 4, 0, [4], [1]);
        p.Op('u');
        using var dir = new TempDir();
        string path = dir.File("w.bin");
        PickleBuilder.WriteZip(path, p.Stop(), new Dictionary<string, byte[]> { ["0"] = Floats(1, 2, 3) });
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(path));
        Assert.Equal($"{path}: tensor 'w': storage 'archive/data/0' holds 12 bytes but 4 × Float32 needs 16", e.Message);
    }

    [Fact]
    public void HugeDeclaredStorageIsRefusedWithoutAllocating()
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark();
        p.Str("w").Tensor("FloatStorage", "0", int.MaxValue, 0, [int.MaxValue], [1]);
        p.Op('u');
        using var dir = new TempDir();
        string path = dir.File("w.bin");
        PickleBuilder.WriteZip(path, p.Stop(), new Dictionary<string, byte[]> { ["0"] = Floats(1) });
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(path));
        Assert.Equal($"{path}: tensor 'w': storage 'archive/data/0' holds 4 bytes but 2147483647 × Float32 needs 8589934588", e.Message);
    }

    [Fact]
    public void OsSystemGlobalIsRefusedBeforeAnythingRuns()
    {
        // The classic exploit: os.system("touch <marker>") via GLOBAL + REDUCE.
        using var dir = new TempDir();
        string marker = dir.File("pwned");
        var p = new PickleBuilder();
        p.Global("os", "system").Mark().Str("touch " + marker).Tuple().Reduce();
        string path = dir.File("evil.bin");
        PickleBuilder.WriteZip(path, p.Stop(), new Dictionary<string, byte[]>());
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(path));
        Assert.StartsWith($"{path}: refusing to load global 'os.system' from the pickle", e.Message);
        Assert.Equal("os.system", e.Key);
        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData("builtins", "eval")]
    [InlineData("torch", "load")]
    [InlineData("torch.storage", "_load_from_bytes")]
    [InlineData("__builtin__", "getattr")]
    public void OtherForeignGlobalsAreRefused(string module, string name)
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Reduce().Mark().Str("x").Global(module, name).Op('u');
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.Unpickle(p.Stop(), "x.bin"));
        Assert.StartsWith($"x.bin: refusing to load global '{module}.{name}' from the pickle", e.Message);
    }

    [Fact]
    public void StackGlobalIsCheckedToo()
    {
        var p = new PickleBuilder();
        p.Str("subprocess").Str("Popen").Op(0x93);
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.Unpickle(p.Stop(), "x.bin"));
        Assert.StartsWith("x.bin: refusing to load global 'subprocess.Popen' from the pickle", e.Message);
    }

    [Fact]
    public void ObjectBuildingOpcodesAreRefused()
    {
        var p = new PickleBuilder();
        p.Global("collections", "OrderedDict").Op(')').Op(0x81); // NEWOBJ
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.Unpickle(p.Stop(), "x.bin"));
        Assert.Equal("x.bin: corrupt or unsupported pickle at byte 28: opcode 0x81 (NEWOBJ) is not allowed in a weights file", e.Message);
    }

    [Fact]
    public void TruncatedPickleIsAnError()
    {
        var bytes = new PickleBuilder().Global("collections", "OrderedDict").Op(')').Reduce().Stop();
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.Unpickle(bytes[..^1], "x.bin"));
        Assert.Contains("the pickle ends without STOP", e.Message);
    }

    [Fact]
    public void NotAZipIsAClearError()
    {
        using var dir = new TempDir();
        string path = dir.File("w.bin");
        File.WriteAllBytes(path, new PickleBuilder().Op('N').Stop());
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(path));
        Assert.StartsWith($"{path}: not a PyTorch zip checkpoint", e.Message);
    }

    [Fact]
    public void ATrainingCheckpointsForeignObjectsAreInertNamesAndItsStateDictLoads()
    {
        // the original sd-v1-4.ckpt keys Lightning's callbacks by the ModelCheckpoint class and pickles configs as
        // objects: a training checkpoint keeps them as inert names (never imported or called); a weights file refuses them
        static byte[] Pickle(bool foreignWeight)
        {
            var p = new PickleBuilder();
            p.Op('}').Mark();
            p.Str("callbacks").Op('}').Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")
                .Op('}').Str("best_model_path").Str("last.ckpt").Op('s').Op('s');
            p.Str("hyper_parameters").Global("omegaconf.dictconfig", "DictConfig").Op(')').Op(0x81).Op('}').Op('b');   // NEWOBJ, BUILD
            p.Str("global_step").Int(470000);
            p.Str("state_dict").Global("collections", "OrderedDict").Op(')').Reduce().Mark();
            p.Str("w").Tensor("FloatStorage", "0", 4, 0, [2, 2], [2, 1]);
            if (foreignWeight) p.Str("bad").Global("numpy.core.multiarray", "scalar").Mark().Int(1).Tuple().Reduce();
            p.Op('u');
            p.Op('u');
            return p.Stop();
        }
        var storage = new Dictionary<string, byte[]> { ["0"] = new[] { 1f, 2f, 3f, 4f }.SelectMany(BitConverter.GetBytes).ToArray() };
        using var dir = new TempDir();
        string ckpt = dir.File("model.ckpt");
        PickleBuilder.WriteZip(ckpt, Pickle(foreignWeight: false), storage);
        var tensors = TorchBinFile.LoadCheckpoint(ckpt, out long? step);
        try
        {
            Assert.Equal(470000, step);
            Assert.Equal(["w"], tensors.Keys);
            Assert.Equal([1f, 2f, 3f, 4f], tensors["w"].data<float>().ToArray());
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(ckpt));
        Assert.Equal($"{ckpt}: refusing to load global 'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint' from the pickle: only the globals of a torch state dict are allowed (is this a weights file?)", e.Message);
        PickleBuilder.WriteZip(ckpt, Pickle(foreignWeight: true), storage);
        e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadCheckpoint(ckpt, out _));
        Assert.Equal($"{ckpt}: the checkpoint is not a flat state dict of tensors (entry 'bad' holds a numpy.core.multiarray.scalar object, which is not loaded)", e.Message);
    }

    [Fact]
    public void SelfContainingPicklesAndOverflowingStridesAreClearErrorsNotHangsOrCrashes()
    {
        using var dir = new TempDir();
        string path = dir.File("x.ckpt");
        // a dict that is its own "state_dict" (BINPUT 0, then BINGET 0 as the value): LoadCheckpoint looped forever
        PickleBuilder.WriteZip(path, new PickleBuilder().Op('}').Op('q').Op(0).Mark().Str("state_dict").Op('h').Op(0).Op('u').Stop(), new Dictionary<string, byte[]>());
        var e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadCheckpoint(path, out _));
        Assert.Equal($"{path}: the checkpoint's \"state_dict\" entries nest deeper than 256 levels or contain themselves", e.Message);
        // a list that contains itself (APPEND of BINGET 0): LoadTree recursed until the stack overflowed (the process died)
        PickleBuilder.WriteZip(path, new PickleBuilder().Op(']').Op('q').Op(0).Op('h').Op(0).Op('a').Stop(), new Dictionary<string, byte[]>());
        e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadTree(path));
        Assert.StartsWith($"{path}: the pickle's containers nest deeper than 256 levels (or contain themselves) at '[0][0]", e.Message);
        // size x stride beyond a long: an OverflowException without the file or the tensor
        PickleBuilder.WriteZip(path, new PickleBuilder().Op('}').Mark().Str("w")
            .Tensor("FloatStorage", "0", 4, 0, [int.MaxValue, int.MaxValue, int.MaxValue], [int.MaxValue, int.MaxValue, int.MaxValue]).Op('u').Stop(),
            new Dictionary<string, byte[]> { ["0"] = new byte[16] });
        e = Assert.Throws<WeightsException>(() => TorchBinFile.LoadAll(path));
        Assert.StartsWith($"{path}: tensor 'w' (size [2147483647, 2147483647, 2147483647], stride [2147483647, 2147483647, 2147483647], offset 0) reaches element ", e.Message);
    }
}
