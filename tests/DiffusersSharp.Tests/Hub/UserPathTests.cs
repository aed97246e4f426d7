using DiffusersSharp.Hub;

namespace DiffusersSharp.Tests.Hub;

/// <summary><see cref="UserPath.ExpandUser"/>: Python's <c>os.path.expanduser</c>.</summary>
public sealed class UserPathTests
{
    [Theory]
    [InlineData("~", "/home/u", "/home/u")]
    [InlineData("~/x/y", "/home/u", "/home/u/x/y")]
    [InlineData("~/x", "/home/u/", "/home/u/x")]           // posixpath: the home's trailing '/' dropped
    [InlineData("~//x", "/home/u", "/home/u//x")]          // the rest as it is (Path.Combine would make it '/x')
    [InlineData("~", "/", "/")]
    [InlineData("~/x", "/", "/x")]
    [InlineData("~user/x", "/home/u", "~user/x")]          // another user's home: not looked up
    [InlineData("x/~/y", "/home/u", "x/~/y")]
    [InlineData("", "/home/u", "")]
    public void ExpandUserAsPosixpath(string path, string home, string expected)
    {
        if (OperatingSystem.IsWindows()) return; // ntpath separators differ
        Assert.Equal(expected, UserPath.ExpandUser(path, home));
    }
}
