using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// A text encoder keeps its linear weights column-major when they are fp32 on the CPU, row-major otherwise
/// (LinearWeightLayout): with the values of the checkpoint, the same parameter objects after a dtype change, the
/// outputs of row-major weights, and saved files in the standard row-major order.
/// </summary>
public class LinearWeightLayoutTests
{
    private const string Expected = "tiny-sd-expected.safetensors";

    private static readonly string TextEncoderFile = Golden.Path("tiny-sd", "text_encoder", "model.safetensors");

    private static CLIPTextModel LoadFp32() => CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder");

    private static Tensor Ids() => Golden.Tensor(Expected, "tokenizer/input_ids");

    private static Tensor TransformersOutput() => Golden.Tensor(Expected, "text_encoder/last_hidden_state");

    // the linear layers' weights: every 2-D parameter but the two embedding tables
    private static bool IsLinear(string name, Tensor p) => p.dim() == 2 && !name.Contains("embedding");

    private static void AssertLayout(nn.Module model, bool columnMajor)
    {
        int linears = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            if (IsLinear(name, p) && name.StartsWith("text_model.", StringComparison.Ordinal))
            {
                linears++;
                if (columnMajor)
                    Assert.True(WeightLoader.IsColumnMajor(p), $"{name} {Layers.Shape(p)} strides [{string.Join(", ", p.stride())}] is not column-major");
                else Assert.True(p.is_contiguous(), $"{name} is not row-major");
            }
            else Assert.True(p.is_contiguous(), $"{name} is not contiguous");
        }
        Assert.True(linears >= 12, $"only {linears} linear weights checked");
    }

    /// <summary>Every parameter equals the stored tensor (cast to the parameter's dtype), whatever its strides.</summary>
    private static void AssertValuesAreTheFile(nn.Module model, string file)
    {
        using var stored = SafetensorsFile.Open(file);
        foreach (var (name, p) in model.named_parameters())
        {
            using var t = stored.Load(name);
            using var cast = t.to(p.dtype);
            Assert.True(p.eq(cast).all().item<bool>(), $"{name} differs from {file}");
        }
    }

    [Fact]
    public void AFloat32LoadHasColumnMajorLinearWeightsWithTheFilesValues()
    {
        using var _ = torch.no_grad();
        using var model = LoadFp32();
        AssertLayout(model, columnMajor: true);
        AssertValuesAreTheFile(model, TextEncoderFile);
        // the second encoder of SDXL too (its text_projection is outside the encoder and stays row-major)
        using var second = CLIPTextModelWithProjection.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2");
        AssertLayout(second, columnMajor: true);
        AssertValuesAreTheFile(second, Golden.Path("tiny-sdxl", "text_encoder_2", "model.safetensors"));
    }

    [Fact]
    public void AFloat16FileLoadsIntoColumnMajorFloat32Weights()
    {
        // a stored dtype other than the weight's is converted before the transposing copy
        using var dir = new TempDir();
        string folder = dir.File("text_encoder");
        Directory.CreateDirectory(folder);
        File.Copy(Golden.Path("tiny-sd", "text_encoder", "config.json"), Path.Combine(folder, "config.json"));
        using (var stored = SafetensorsFile.Open(TextEncoderFile))
        {
            var half = stored.LoadAll().ToDictionary(kv => kv.Key, kv => kv.Value.is_floating_point() ? kv.Value.to(ScalarType.Float16) : kv.Value);
            SafetensorsFile.Save(Path.Combine(folder, "model.safetensors"), half);
            foreach (var t in half.Values) t.Dispose();
        }
        using var _ = torch.no_grad();
        using var model = CLIPTextModel.FromPretrained(dir.Path, "text_encoder");
        Assert.Equal(ScalarType.Float32, model.Dtype);
        AssertLayout(model, columnMajor: true);
        AssertValuesAreTheFile(model, Path.Combine(folder, "model.safetensors"));
    }

    [Fact]
    public void TensorsLoadedIntoColumnMajorWeightsKeepTheLayout()
    {
        // what a pickled .bin gives the loader: plain tensors (row-major, here fp16 and fp32) copied into the parameters
        using var _ = torch.no_grad();
        using var model = LoadFp32();
        using var stored = SafetensorsFile.Open(TextEncoderFile);
        foreach (var dtype in new[] { ScalarType.Float16, ScalarType.Float32 })
        {
            var tensors = stored.LoadAll().ToDictionary(kv => kv.Key, kv => kv.Value.is_floating_point() ? kv.Value.to(dtype) : kv.Value);
            foreach (var (name, p) in model.named_parameters()) p.zero_();
            WeightLoader.LoadInto(model, tensors, "tensors");
            AssertLayout(model, columnMajor: true);
            foreach (var (name, p) in model.named_parameters())
                Assert.True(p.eq(tensors[name].to(p.dtype)).all().item<bool>(), $"{dtype}: {name} differs from the tensor loaded into it");
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void ABFloat16LoadKeepsRowMajorWeights()
    {
        using var _ = torch.no_grad();
        using var model = CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder", new LoadOptions { Dtype = ScalarType.BFloat16 });
        AssertLayout(model, columnMajor: false);
        AssertValuesAreTheFile(model, TextEncoderFile);
    }

    [Fact]
    public void ColumnMajorWeightsGiveTheOutputsOfRowMajorOnes()
    {
        using var _ = torch.no_grad();
        using var ids = Ids();
        using var columnMajor = LoadFp32();
        using var rowMajor = LoadFp32();
        // the same parameters made row-major in place: the layout keys on the parameters' handles, which set_ keeps
        foreach (var (name, p) in rowMajor.named_parameters().ToList())
            if (IsLinear(name, p)) { using var c = p.contiguous(); p.set_(c); }
        AssertLayout(rowMajor, columnMajor: false);
        using var a = columnMajor.Forward(ids);
        using var b = rowMajor.Forward(ids);
        AssertLayout(rowMajor, columnMajor: false);
        Tol.Close(a.LastHiddenState, b.LastHiddenState, 1e-6, "column-major against row-major weights");
        using var expected = TransformersOutput();
        Tol.Close(a.LastHiddenState, expected, Tol.ModelAbs, "column-major weights against transformers");
    }

    [Fact]
    public void ChangingTheDtypeLaysTheSameParametersOutAgainAtTheNextPass()
    {
        using var _ = torch.no_grad();
        using var ids = Ids();
        using var model = LoadFp32();
        model.to(ScalarType.BFloat16);
        var before = model.named_parameters().ToList();
        using (var bf16 = model.Forward(ids))
        using (var expected = TransformersOutput())
            Tol.Close(bf16.LastHiddenState, expected, 0.1, "bf16 after the change");
        AssertLayout(model, columnMajor: false);
        var after = model.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        Assert.All(before, kv => Assert.Same(kv.parameter, after[kv.name]));
        AssertValuesAreTheFile(model, TextEncoderFile);

        model.to(ScalarType.Float32);
        using (var fp32 = model.Forward(ids)) Assert.Equal(ScalarType.Float32, fp32.LastHiddenState.dtype);
        AssertLayout(model, columnMajor: true);
    }

    [Fact]
    public void LayingWeightsOutLeavesNoTensorBehind()
    {
        // a view of an old weight left to the finaliser would keep its memory alive; counted across the passes that lay
        // the weights out (TorchSharp's module.to itself leaves two tensor handles behind, with or without this layout)
        using var _ = torch.no_grad();
        using var ids = Ids();
        using var model = LoadFp32();
        using (model.Forward(ids)) { }
        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float32 })
        {
            model.to(dtype);
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            using (model.Forward(ids)) { }
            AssertLayout(model, columnMajor: dtype == ScalarType.Float32);
            Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
    }

    [Fact]
    public void SavingColumnMajorWeightsWritesTheStoredOrder()
    {
        using var dir = new TempDir();
        using (var model = LoadFp32())
        {
            AssertLayout(model, columnMajor: true);
            model.SavePretrained(dir.Path);
        }
        using var original = SafetensorsFile.Open(TextEncoderFile);
        using var saved = SafetensorsFile.Open(Path.Combine(dir.Path, "model.safetensors"));
        foreach (var name in original.Keys.Where(k => k.EndsWith("proj.weight", StringComparison.Ordinal) || k.EndsWith("fc1.weight", StringComparison.Ordinal)))
        {
            using var t = original.Load(name);
            using var s = saved.Load(name);
            Assert.True(s.is_contiguous());
            Assert.True(s.eq(t).all().item<bool>(), $"{name} was saved in another order");
        }
    }
}
