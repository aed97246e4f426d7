using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>
/// Float8 safetensors tensors (<c>F8_E4M3</c> = torch's float8_e4m3fn, <c>F8_E5M2</c> = float8_e5m2): every code reads as
/// the value the OCP FP8 bit layout gives it, in Float32, and loads into a model of any float dtype as torch's
/// <c>param.copy_(fp8_tensor)</c> does (the value converted to the parameter's dtype). The expected values are derived
/// here from the bit layouts, independently of the decoder, and checked against hand-worked anchors.
/// </summary>
public class Float8Tests
{
    /// <summary>
    /// The value of <paramref name="code"/> in a format of <paramref name="exponentBits"/> exponent and
    /// <paramref name="mantissaBits"/> mantissa bits (bias 2^(e-1) - 1), worked in double: (-1)^s × 2^(e-bias) × (1 + m/2^M)
    /// for a normal number, (-1)^s × 2^(1-bias) × m/2^M for exponent 0. E5M2 is IEEE-like (exponent all ones: ±inf for
    /// mantissa 0, else NaN); E4M3FN has no infinities, and only exponent and mantissa all ones is NaN.
    /// </summary>
    private static double SpecValue(int code, int exponentBits, int mantissaBits, bool ieee)
    {
        int sign = code >> 7, exponent = (code >> mantissaBits) & ((1 << exponentBits) - 1), mantissa = code & ((1 << mantissaBits) - 1);
        int bias = (1 << (exponentBits - 1)) - 1, allOnes = (1 << exponentBits) - 1;
        double Signed(double v) => sign == 1 ? -v : v;
        if (ieee && exponent == allOnes) return mantissa == 0 ? Signed(double.PositiveInfinity) : double.NaN;
        if (!ieee && exponent == allOnes && mantissa == (1 << mantissaBits) - 1) return double.NaN;
        double fraction = mantissa / Math.Pow(2, mantissaBits);
        return Signed(exponent == 0 ? fraction * Math.Pow(2, 1 - bias) : (1 + fraction) * Math.Pow(2, exponent - bias));
    }

    private static double E4M3(int code) => SpecValue(code, 4, 3, ieee: false);
    private static double E5M2(int code) => SpecValue(code, 5, 2, ieee: true);
    private static Func<int, double> Spec(string dtype) => dtype == "F8_E4M3" ? E4M3 : E5M2;

    /// <summary>A safetensors file of byte tensors whose header then names <paramref name="dtypes"/>' float8 dtype for
    /// each (one byte an element either way, so the offsets hold).</summary>
    private static void WriteFloat8(string path, Dictionary<string, Tensor> codes, IReadOnlyDictionary<string, string> dtypes)
    {
        SafetensorsFile.Save(path, codes, new Dictionary<string, string> { ["format"] = "pt" });
        Fuzz.WeightFiles.EditHeader(path, h =>
        {
            foreach (var (key, dtype) in dtypes) h[key]!["dtype"] = dtype;
        });
    }

    private static int Bits(float v) => BitConverter.SingleToInt32Bits(v);

    /// <summary>Asserts <paramref name="got"/> is exactly <paramref name="want"/>: the same float32 bits (so -0.0 is not
    /// +0.0), or NaN for NaN.</summary>
    private static void AssertSame(double want, float got, string what)
    {
        if (double.IsNaN(want)) Assert.True(float.IsNaN(got), $"{what}: expected NaN, got {got}");
        else Assert.True(Bits((float)want) == Bits(got), $"{what}: expected {want:R}, got {got:R}");
    }

    [Theory]
    [InlineData("F8_E4M3")]
    [InlineData("F8_E5M2")]
    public void EveryCodeReadsAsTheValueItsBitLayoutGives(string dtype)
    {
        using var dir = new TempDir();
        string file = dir.File("codes.safetensors");
        // all 256 codes, then 300 000 more in a scrambled order: more than one decode buffer (64 KB), so the parts meet
        byte[] scrambled = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 37 + (i >> 8))).ToArray();
        WriteFloat8(file, new()
        {
            ["all"] = torch.arange(256, ScalarType.Int32).to(ScalarType.Byte).reshape(16, 16),
            ["scrambled"] = torch.tensor(scrambled).reshape(3, 100_000),
        }, new Dictionary<string, string> { ["all"] = dtype, ["scrambled"] = dtype });

        var spec = Spec(dtype);
        using var f = SafetensorsFile.Open(file);
        Assert.Equal(dtype, f.Entries["all"].DType);
        using var all = f.Load("all");
        Assert.Equal(ScalarType.Float32, all.dtype);
        Assert.Equal(new long[] { 16, 16 }, all.shape);
        float[] values = all.data<float>().ToArray();
        for (int code = 0; code < 256; code++) AssertSame(spec(code), values[code], $"{dtype} 0x{code:X2}");

        using var big = f.Load("scrambled");
        Assert.Equal(new long[] { 3, 100_000 }, big.shape);
        float[] bigValues = big.data<float>().ToArray();
        for (int i = 0; i < scrambled.Length; i++) AssertSame(spec(scrambled[i]), bigValues[i], $"{dtype} element {i} (0x{scrambled[i]:X2})");
    }

    /// <summary>Hand-worked values of the two formats (OCP FP8; torch's float8_e4m3fn / float8_e5m2), also as a check on
    /// <see cref="SpecValue"/>.</summary>
    public static TheoryData<string, int, double> Anchors => new()
    {
        { "F8_E4M3", 0x00, 0.0 },
        { "F8_E4M3", 0x80, -0.0 },
        { "F8_E4M3", 0x01, 1.0 / 512 },        // smallest subnormal, 2^-9
        { "F8_E4M3", 0x07, 7.0 / 512 },        // largest subnormal
        { "F8_E4M3", 0x08, 1.0 / 64 },         // smallest normal, 2^-6
        { "F8_E4M3", 0x38, 1.0 },
        { "F8_E4M3", 0x40, 2.0 },
        { "F8_E4M3", 0xC0, -2.0 },
        { "F8_E4M3", 0x3C, 1.5 },
        { "F8_E4M3", 0x78, 256.0 },            // exponent 15 is a number, not infinity
        { "F8_E4M3", 0x7E, 448.0 },            // the largest value
        { "F8_E4M3", 0xFE, -448.0 },
        { "F8_E4M3", 0x7F, double.NaN },
        { "F8_E4M3", 0xFF, double.NaN },
        { "F8_E5M2", 0x00, 0.0 },
        { "F8_E5M2", 0x80, -0.0 },
        { "F8_E5M2", 0x01, 1.0 / 65536 },      // smallest subnormal, 2^-16
        { "F8_E5M2", 0x03, 3.0 / 65536 },      // largest subnormal
        { "F8_E5M2", 0x04, 1.0 / 16384 },      // smallest normal, 2^-14
        { "F8_E5M2", 0x3C, 1.0 },
        { "F8_E5M2", 0x38, 0.5 },
        { "F8_E5M2", 0x3E, 1.5 },
        { "F8_E5M2", 0x40, 2.0 },
        { "F8_E5M2", 0x7B, 57344.0 },          // the largest finite value
        { "F8_E5M2", 0xFB, -57344.0 },
        { "F8_E5M2", 0x7C, double.PositiveInfinity },
        { "F8_E5M2", 0xFC, double.NegativeInfinity },
        { "F8_E5M2", 0x7D, double.NaN },
        { "F8_E5M2", 0x7E, double.NaN },
        { "F8_E5M2", 0x7F, double.NaN },
        { "F8_E5M2", 0xFD, double.NaN },
    };

    [Theory]
    [MemberData(nameof(Anchors))]
    public void HandWorkedCodesReadAsTheirValues(string dtype, int code, double value)
    {
        AssertSame(value, (float)Spec(dtype)(code), $"the spec's {dtype} 0x{code:X2}");
        using var dir = new TempDir();
        string file = dir.File("one.safetensors");
        WriteFloat8(file, new() { ["x"] = torch.tensor(new[] { (byte)code }) }, new Dictionary<string, string> { ["x"] = dtype });
        using var f = SafetensorsFile.Open(file);
        using var x = f.Load("x");
        float got = x.data<float>()[0];
        AssertSame(value, got, $"{dtype} 0x{code:X2}");
        if (value == 0) Assert.Equal(double.IsNegative(value), float.IsNegative(got));
    }

    [Fact]
    public void TheFormatsHaveTheirNaNsAndInfinitiesOnly()
    {
        using var dir = new TempDir();
        string file = dir.File("codes.safetensors");
        WriteFloat8(file, new()
        {
            ["e4m3"] = torch.arange(256, ScalarType.Int32).to(ScalarType.Byte),
            ["e5m2"] = torch.arange(256, ScalarType.Int32).to(ScalarType.Byte),
        }, new Dictionary<string, string> { ["e4m3"] = "F8_E4M3", ["e5m2"] = "F8_E5M2" });
        using var f = SafetensorsFile.Open(file);
        float[] e4m3 = f.Load("e4m3").data<float>().ToArray(), e5m2 = f.Load("e5m2").data<float>().ToArray();
        Assert.Equal(new[] { 0x7F, 0xFF }, Enumerable.Range(0, 256).Where(c => float.IsNaN(e4m3[c])));
        Assert.DoesNotContain(e4m3, float.IsInfinity);
        Assert.Equal(448f, e4m3.Where(float.IsFinite).Max());
        Assert.Equal(new[] { 0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF }, Enumerable.Range(0, 256).Where(c => float.IsNaN(e5m2[c])));
        Assert.Equal(new[] { 0x7C, 0xFC }, Enumerable.Range(0, 256).Where(c => float.IsInfinity(e5m2[c])));
        Assert.Equal(57344f, e5m2.Where(float.IsFinite).Max());
    }

    /// <summary>
    /// A copy of a tiny-sd model folder with every float tensor replaced by float8 codes of its shape (E4M3 and E5M2 in
    /// turn, seeded, no NaN or infinity: the load refuses those), and, per key, the Float32 values the codes stand for.
    /// </summary>
    private static Dictionary<string, Tensor> WriteFloat8Model(string folder, string from, string weightsFile)
    {
        Directory.CreateDirectory(folder);
        File.Copy(Golden.Path("tiny-sd", from, "config.json"), Path.Combine(folder, "config.json"));
        var rng = new Random(8);
        var expected = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var dtypes = new Dictionary<string, string>(StringComparer.Ordinal);
        using var f = Golden.Open(Path.Combine("tiny-sd", from, weightsFile));
        var all = f.LoadAll();
        foreach (var key in all.Keys.Order(StringComparer.Ordinal).ToList())
        {
            var t = all[key];
            if (!t.is_floating_point()) continue;
            string dtype = dtypes.Count % 2 == 0 ? "F8_E4M3" : "F8_E5M2";
            var spec = Spec(dtype);
            byte[] codes = new byte[t.numel()];
            for (int i = 0; i < codes.Length; i++)
            {
                do codes[i] = (byte)rng.Next(256);
                while (!double.IsFinite(spec(codes[i])));
            }
            expected[key] = torch.tensor(codes.Select(c => (float)spec(c)).ToArray()).reshape(t.shape);
            all[key] = torch.tensor(codes).reshape(t.shape);
            t.Dispose();
            dtypes[key] = dtype;
        }
        WriteFloat8(Path.Combine(folder, weightsFile), all, dtypes);
        foreach (var t in all.Values) t.Dispose();
        return expected;
    }

    /// <summary>Every float parameter and buffer of <paramref name="model"/> holds its expected value converted to
    /// <paramref name="dtype"/> (torch's conversion of the Float32 value), bit for bit.</summary>
    private static void AssertHolds(nn.Module model, Dictionary<string, Tensor> expected, ScalarType dtype)
    {
        int compared = 0;
        foreach (var (key, value) in model.state_dict())
        {
            if (!value.is_floating_point()) continue;
            Assert.Equal(dtype, value.dtype);
            using var want = expected[key].to(dtype);
            using var got = value.contiguous();
            Assert.True(want.bytes.SequenceEqual(got.bytes), $"{key} differs in {dtype}");
            compared++;
        }
        Assert.Equal(expected.Count, compared);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void AFloat8UNetLoadsIntoAModelOfAnyFloatDtypeAsTheValuesConverted(ScalarType dtype)
    {
        using var dir = new TempDir();
        var expected = WriteFloat8Model(Path.Combine(dir.Path, "unet"), "unet", "diffusion_pytorch_model.safetensors");
        using var unet = UNet2DConditionModel.FromPretrained(dir.Path, "unet", new LoadOptions { Dtype = dtype });
        AssertHolds(unet, expected, dtype);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void AFloat8TextEncoderLoadsAsTheValuesConverted(ScalarType dtype)
    {
        // in fp32 the encoder keeps its linear weights column-major: the load fills those through a whole-tensor temporary
        using var dir = new TempDir();
        var expected = WriteFloat8Model(Path.Combine(dir.Path, "text_encoder"), "text_encoder", "model.safetensors");
        using var encoder = CLIPTextModel.FromPretrained(dir.Path, "text_encoder", new LoadOptions { Dtype = dtype });
        AssertHolds(encoder, expected, dtype);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void AFloat8FileReadWholeLoadsIntoAWeightMapAsTheValuesConverted(ScalarType dtype)
    {
        // what LoRA, textual inversion and single-file loading read: WeightLoader.ReadFile (SafetensorsFile.LoadAll)
        using var dir = new TempDir();
        var codes = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var dtypes = new Dictionary<string, string>(StringComparer.Ordinal);
        var expected = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < TinyNet.Keys.Length; i++)
        {
            var (name, shape) = TinyNet.Keys[i];
            string f8 = i % 2 == 0 ? "F8_E5M2" : "F8_E4M3";
            var spec = Spec(f8);
            long n = shape.Aggregate(1L, (a, b) => a * b);
            // codes below 0x7C, half of them negated: finite in both formats
            byte[] b = Enumerable.Range(0, (int)n).Select(j => (byte)((0x30 + 3 * j + i) % 0x7C | (j % 2) << 7)).ToArray();
            codes[name] = torch.tensor(b).reshape(shape);
            expected[name] = torch.tensor(b.Select(c => (float)spec(c)).ToArray()).reshape(shape);
            dtypes[name] = f8;
        }
        string file = dir.File("diffusion_pytorch_model.safetensors");
        WriteFloat8(file, codes, dtypes);

        var read = WeightLoader.ReadFile(file);
        foreach (var (name, want) in expected)
        {
            Assert.Equal(ScalarType.Float32, read[name].dtype);
            Assert.True(want.bytes.SequenceEqual(read[name].bytes), name);
        }
        using var net = new TinyNet();
        net.to(dtype);
        WeightLoader.LoadInto(net, read, file);
        AssertHolds(net, expected, dtype);

        // and the same file streamed (ModelLoading.LoadWeights)
        using var streamed = new TinyNet();
        streamed.to(dtype);
        ModelLoading.LoadWeights(streamed, dir.Path);
        AssertHolds(streamed, expected, dtype);
    }
}
