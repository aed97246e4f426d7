using System.Runtime.InteropServices;

namespace DiffusersSharp.Loading;

/// <summary>
/// The two 8-bit float formats safetensors stores (<c>F8_E4M3</c>, <c>F8_E5M2</c>: OCP FP8, torch's
/// <c>float8_e4m3fn</c> and <c>float8_e5m2</c>), which TorchSharp 0.107 has no tensor type for. Each is decoded by a
/// 256-entry table to float32, which holds every value of both formats exactly; the load then converts the float32
/// values to the parameter's dtype as any stored weight is converted (bf16 and fp16 also hold every value exactly),
/// which is what torch's <c>param.copy_(fp8_tensor)</c> gives.
/// </summary>
internal static class Float8
{
    /// <summary>
    /// float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; subnormals for exponent 0 (smallest 2^-9); no
    /// infinities; S.1111.111 (0x7F, 0xFF) is NaN, so the largest value is 0x7E = 448.
    /// </summary>
    public static readonly float[] E4M3FN = Table(exponentBits: 4, mantissaBits: 3, ieeeSpecials: false);

    /// <summary>
    /// float8_e5m2: sign, 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like: exponent 31 is ±infinity (mantissa 0) or
    /// NaN; the largest finite value is 0x7B = 57344, the smallest subnormal 2^-16 (the top byte of an IEEE half).
    /// </summary>
    public static readonly float[] E5M2 = Table(exponentBits: 5, mantissaBits: 2, ieeeSpecials: true);

    /// <summary>The decoding table of a safetensors dtype name, or null when it is not a float8 one.</summary>
    public static float[]? TableOf(string dtype) => dtype switch
    {
        "F8_E4M3" => E4M3FN,
        "F8_E5M2" => E5M2,
        _ => null,
    };

    /// <summary>Decodes <paramref name="codes"/> into the float32 elements of <paramref name="destination"/> (as many
    /// bytes as it has elements).</summary>
    public static void Decode(float[] table, ReadOnlySpan<byte> codes, Span<byte> destination)
    {
        var values = MemoryMarshal.Cast<byte, float>(destination);
        if (values.Length != codes.Length)
            throw new ArgumentException($"{codes.Length} codes for {values.Length} float32 elements", nameof(destination));
        for (int i = 0; i < codes.Length; i++) values[i] = table[codes[i]];
    }

    private static float[] Table(int exponentBits, int mantissaBits, bool ieeeSpecials)
    {
        int bias = (1 << (exponentBits - 1)) - 1, topExponent = (1 << exponentBits) - 1, mantissaMask = (1 << mantissaBits) - 1;
        var table = new float[256];
        for (int code = 0; code < 256; code++)
        {
            int exponent = (code >> mantissaBits) & topExponent, mantissa = code & mantissaMask;
            float magnitude =
                ieeeSpecials && exponent == topExponent ? (mantissa == 0 ? float.PositiveInfinity : float.NaN)
                : !ieeeSpecials && exponent == topExponent && mantissa == mantissaMask ? float.NaN
                : exponent == 0 ? MathF.ScaleB(mantissa, 1 - bias - mantissaBits)                      // subnormal: 0.m × 2^(1-bias)
                : MathF.ScaleB((1 << mantissaBits) | mantissa, exponent - bias - mantissaBits);         // normal: 1.m × 2^(e-bias)
            table[code] = (code & 0x80) != 0 ? -magnitude : magnitude;
        }
        return table;
    }
}
