using System.Text;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Imaging;

public class NpyFileTests
{
    [Fact]
    public void HeaderIsWhatNpSaveWritesForPipelineImages()
    {
        // np.save of a float32 C-contiguous (1, 32, 32, 3) array (numpy >= 1.23): magic, v1.0, u16 length 118,
        // the dict, 21 - len("1") = 20 growth spaces, padding to 128 bytes, newline.
        string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 32, 32, 3), }";
        string text = dict + new string(' ', 20) + new string(' ', 30) + "\n";
        byte[] expected = [0x93, .. "NUMPY"u8, 1, 0, 118, 0, .. Encoding.ASCII.GetBytes(text)];
        Assert.Equal(128, expected.Length);
        Assert.Equal(expected, NpyFile.Header("<f4", [1, 32, 32, 3]));
    }

    [Fact]
    public void HeaderOfOneDimensionalArrayUsesPythonTupleRepr()
    {
        // "(5,)" is Python's repr of a one-tuple; 58 chars + 20 spaces + newline = 79 → padded to 118 (128 total).
        byte[] h = NpyFile.Header("<f8", [5]);
        string text = Encoding.ASCII.GetString(h, 10, h.Length - 10);
        Assert.StartsWith("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", text);
        Assert.Equal(128, h.Length);
        Assert.EndsWith(" \n", text);
        Assert.Equal(h.Length - 10, h[8] | h[9] << 8);
    }

    [Fact]
    public void HeaderAlreadyAlignedGetsAFull64BytesOfPaddingAsNumpy()
    {
        // numpy pads with ARRAY_ALIGN - ((10 + hlen) % 64), i.e. 64 (not 0) when already aligned: for shape
        // (1,1,1,1,1,1,1,1,10**17) the dict is 97 chars, + 20 growth spaces + newline = 118, 10 + 118 = 128.
        byte[] h = NpyFile.Header("<f4", [1, 1, 1, 1, 1, 1, 1, 1, 100000000000000000]);
        Assert.Equal(192, h.Length);
        string text = Encoding.ASCII.GetString(h, 10, h.Length - 10);
        Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 100000000000000000), }"
                     + new string(' ', 20 + 64) + "\n", text);
    }

    [Fact]
    public void WriteThenReadRoundTripsExactly()
    {
        using var dir = new TempDir();
        using var g = new Generator(3);
        using var x = torch.rand(new long[] { 2, 5, 4, 3 }, generator: g);
        NpyFile.Write(dir.File("x.npy"), x);
        byte[] bytes = File.ReadAllBytes(dir.File("x.npy"));
        Assert.Equal(128 + 2 * 5 * 4 * 3 * 4, bytes.Length);
        // data: raw little-endian float32 in C order right after the 128-byte header
        Assert.Equal(x[1, 4, 3, 2].item<float>(), BitConverter.ToSingle(bytes, 128 + 4 * (2 * 5 * 4 * 3 - 1)));
        using var y = NpyFile.Read(dir.File("x.npy"));
        Assert.Equal(ScalarType.Float32, y.dtype);
        Assert.Equal(x.shape, y.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(y, x));
        Assert.Single(Directory.GetFiles(dir.Path)); // no temp file left behind
    }

    [Fact]
    public void NonContiguousTensorIsWrittenInCOrder()
    {
        using var x = torch.arange(24, ScalarType.Float32).reshape(2, 3, 4);
        using var t = x.permute(2, 0, 1); // [4, 2, 3], non-contiguous
        using var y = NpyFile.Parse(NpyFile.ToBytes(t));
        Assert.Equal(new long[] { 4, 2, 3 }, y.shape);
        Assert.Equal(0.0, Tol.MaxAbsDiff(y, t));
    }

    [Fact]
    public void TruncatedFileIsRejectedWithSizes()
    {
        using var x = torch.ones(3, 3);
        byte[] bytes = NpyFile.ToBytes(x);
        var e = Assert.Throws<DiffusersException>(() => NpyFile.Parse(bytes[..^4], "cut.npy"));
        Assert.Equal("cut.npy: data has 32 bytes, shape (3, 3) of <f4 needs 36", e.Message);
        var bad = Assert.Throws<DiffusersException>(() => NpyFile.Parse("hello world!"u8.ToArray(), "t.npy"));
        Assert.Equal("t.npy: not a .npy file (bad magic)", bad.Message);
    }
}
