"""Atomic writes: all or nothing, never a truncated file."""
import json
import os

import pytest

from avtoolkit.utils.atomic import (atomic_path, atomic_write,
                                    write_bytes_atomic, write_json_atomic,
                                    write_text_atomic)


def test_writes_replace_the_file_whole(tmp_path):
    path = tmp_path / 'sub' / 'a.json'
    write_json_atomic(str(path), dict(a=1), indent=1)
    assert json.loads(path.read_text()) == dict(a=1)
    write_text_atomic(str(path), 'text')
    assert path.read_text() == 'text'
    write_bytes_atomic(str(path), b'\x00\x01')
    assert path.read_bytes() == b'\x00\x01'
    assert os.listdir(path.parent) == ['a.json']


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'a.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as f:
            f.write('half of the new')
            raise RuntimeError('crash during the write')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['a.txt']
    with pytest.raises(RuntimeError):
        with atomic_path(str(tmp_path / 'b.npz')) as tmp:
            open(tmp, 'wb').write(b'x')
            raise RuntimeError
    assert os.listdir(tmp_path) == ['a.txt']


def test_new_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(str(tmp_path / 'a.txt'), 'x')
        plain = tmp_path / 'plain.txt'
        plain.write_text('x')
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / 'a.txt').st_mode & 0o777
    assert mode == os.stat(plain).st_mode & 0o777 == 0o640


def test_mode_is_checked(tmp_path):
    with pytest.raises(ValueError, match='mode'):
        with atomic_write(str(tmp_path / 'a'), 'a'):
            pass


def test_temporary_names_and_their_cleanup(tmp_path):
    """What a killed writer leaves (``.NAME.<random>.tmp``) is recognised
    by the target's name, and only that is removed."""
    import re

    from avtoolkit.utils.atomic import remove_temp_files, temp_file_pattern
    with atomic_path(str(tmp_path / 'a.npy')) as tmp:
        name = os.path.basename(tmp)
        assert re.fullmatch(temp_file_pattern(r'a\.npy'), name)
        assert not re.fullmatch(temp_file_pattern(r'b\.npy'), name)
        open(tmp, 'wb').write(b'x')
    left = ['.a.npy.x1y2z3_q.tmp', '.b.npy.abcdefgh.tmp', '.c.tmp',
            'a.npy.tmp', '.a.npy.tmp', 'a.npy']
    for name in left[:-1]:
        (tmp_path / name).write_bytes(b'')
    assert remove_temp_files(str(tmp_path), r'.+\.npy') == [
        '.a.npy.x1y2z3_q.tmp', '.b.npy.abcdefgh.tmp']
    assert sorted(os.listdir(tmp_path)) == sorted(left[2:])
    assert remove_temp_files(str(tmp_path / 'absent'), 'x') == []


def test_text_keeps_line_ends_when_asked(tmp_path):
    path = tmp_path / 'list.txt'
    write_text_atomic(str(path), 'a\r\nb\n', newline='')
    assert path.read_bytes() == b'a\r\nb\n'
